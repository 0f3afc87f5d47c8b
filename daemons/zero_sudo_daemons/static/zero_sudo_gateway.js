/*
 * zero_sudo gateway client: one WebSocket to the gateway, reconnected with jittered
 * exponential backoff, channels resubscribed, and a resync callback whenever events may
 * have been missed (the gateway said so, or the connection was lost and restored).
 * Protocol: docs/gateway.md. No dependencies; works as a classic script or an ES module.
 *
 *   const gw = new ZeroSudoGateway({
 *     channels: ["model:res.partner"],
 *     token: async () => (await fetch("/zero_sudo/gateway_token")).text(), // omit: session cookie
 *     onEvent: (event) => ...,     // {ch, model, op, ids, epoch, seq} or {ch, data} for user channels
 *     onResync: (reason) => ...,   // reload what the page shows from Odoo
 *     onStatus: (status, detail) => ..., // "connecting" | "connected" | "disconnected"
 *   });
 */
(function (root) {
  "use strict";

  // Reconnect delays double from 0.5 s up to 30 s, each drawn in [d/2, d] ("equal jitter"):
  // after a gateway restart thousands of pages come back spread out, never all at once.
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 30000;

  function defaultUrl() {
    const scheme = root.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + root.location.host + "/ws";
  }

  class ZeroSudoGateway {
    constructor(options) {
      this.url = options.url || defaultUrl();
      this.token = options.token || null;
      this.channels = new Set(options.channels || []);
      this.onEvent = options.onEvent || function () {};
      this.onResync = options.onResync || function () {};
      this.onStatus = options.onStatus || function () {};
      this.attempt = 0;
      this.everConnected = false;
      this.closed = false;
      this.socket = null;
      this.timer = null;
      this._connect();
    }

    subscribe(channel) {
      this.channels.add(channel);
      this._send({ op: "sub", ch: [channel] });
    }

    unsubscribe(channel) {
      this.channels.delete(channel);
      this._send({ op: "unsub", ch: [channel] });
    }

    close() {
      this.closed = true;
      clearTimeout(this.timer);
      if (this.socket) this.socket.close(1000, "client closed");
    }

    _send(command) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN && this.authenticated) {
        this.socket.send(JSON.stringify(command));
      }
    }

    async _connect() {
      if (this.closed) return;
      this.authenticated = false;
      this.onStatus("connecting", { attempt: this.attempt });
      let token = null;
      try {
        token = typeof this.token === "function" ? await this.token() : this.token;
      } catch (error) {
        this._retry({ error: String(error) });
        return;
      }
      const socket = new WebSocket(this.url);
      this.socket = socket;
      socket.onopen = () => {
        if (token) socket.send(JSON.stringify({ op: "auth", token: token }));
      };
      socket.onmessage = (message) => this._receive(JSON.parse(message.data));
      socket.onclose = (close) => {
        if (this.socket !== socket) return;
        this.socket = null;
        this._retry({ code: close.code, reason: close.reason });
      };
    }

    _receive(message) {
      switch (message.t) {
        case "hello":
          this.authenticated = true;
          this.attempt = 0;
          if (this.channels.size) this._send({ op: "sub", ch: Array.from(this.channels) });
          this.onStatus("connected", message);
          // Whatever happened while disconnected was missed: the page must reload.
          if (this.everConnected) this.onResync("reconnect");
          this.everConnected = true;
          break;
        case "event":
          this.onEvent(message);
          break;
        case "resync":
          this.onResync(message.reason);
          break;
        case "error":
        case "subscribed":
        case "unsubscribed":
          if (message.refused) this.onStatus("refused", message.refused);
          break;
      }
    }

    _retry(detail) {
      if (this.closed) return;
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, Math.min(this.attempt, 16)));
      this.attempt += 1;
      const delay = ceiling / 2 + Math.random() * (ceiling / 2);
      this.onStatus("disconnected", Object.assign({ retryInMs: Math.round(delay) }, detail));
      this.timer = setTimeout(() => this._connect(), delay);
    }
  }

  root.ZeroSudoGateway = ZeroSudoGateway;
})(typeof window !== "undefined" ? window : globalThis);
