/**
 * One WebSocket to the zero_sudo gateway (docs/gateway.md), kept open for the life of the tab.
 *
 * Authentication: when the gateway is on Odoo's own origin the browser sends Odoo's session
 * cookie with the handshake and the gateway greets at once (`hello`), granting the channels
 * Odoo stored in the session (renewed through `/my/gateway/grants` before every reconnection:
 * they expire like tokens); when it does not (another origin, or the cookie is not accepted)
 * a token is fetched from Odoo (`/my/gateway/token`) and sent as the first command.
 * `renewGrants()` reconnects to pick up new grants (an admin published a model).
 * Reconnects after any close with exponential backoff and equal
 * jitter (0.5 s doubling to 30 s, reset once authenticated), resubscribes its channels, and
 * reports `resync("reconnect")`: whatever happened while it was away was missed.
 *
 * Subscriptions are counted (two views of one model share the channel) and sent in batches
 * (one `sub` and one `unsub` command per burst of changes), well inside the gateway's rate
 * limit of commands.
 */

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
// The cookie greets within the handshake's round trip; if no `hello` came by then, the gateway
// did not take the cookie (another origin, an expired session): authenticate with a token.
const COOKIE_GRACE_MS = 1500;
// Channel changes within this window go out as one command each way.
const BATCH_MS = 20;
// The gateway's bound on channels per command and per connection.
const MAX_CHANNELS_PER_COMMAND = 100;

/** Equal jitter: a delay drawn in [d/2, d] for the attempt's nominal delay d. */
export function backoffDelay(attempt, random = Math.random) {
    const nominal = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
    return nominal / 2 + random() * (nominal / 2);
}

export class GatewayConnection {
    /**
     * @param {Object} options
     * @param {string} options.url ws:// or wss:// URL of the gateway's /ws
     * @param {boolean} options.cookie whether the session cookie may authenticate (same origin)
     * @param {() => Promise<string>} options.fetchToken
     * @param {() => Promise<void>} options.refreshGrants renews the session's grants (cookie)
     * @param {(message: Object) => void} options.onMessage every `event` message
     * @param {(reason: string) => void} options.onResync
     * @param {(status: string, detail?: any) => void} [options.onStatus]
     */
    constructor({ url, cookie, fetchToken, refreshGrants, onMessage, onResync, onStatus = () => {} }) {
        Object.assign(this, { url, cookie, fetchToken, refreshGrants, onMessage, onResync, onStatus });
        this.refs = new Map(); // channel -> number of subscribers in this tab
        this.sent = new Set(); // channels the gateway has been asked for on this socket
        this.refused = new Map(); // channel -> reason, as the gateway last answered
        this.socket = null;
        this.authenticated = false;
        this.attempt = 0;
        this.everConnected = false;
        this.stopped = false;
        this.batchTimer = null;
        this.retryTimer = null;
        this.graceTimer = null;
        this.principal = null;
    }

    start() {
        this.stopped = false;
        this._open();
    }

    stop() {
        this.stopped = true;
        clearTimeout(this.retryTimer);
        clearTimeout(this.graceTimer);
        clearTimeout(this.batchTimer);
        if (this.socket) {
            this.socket.close(1000, "bye");
        }
    }

    subscribe(channel) {
        this.refs.set(channel, (this.refs.get(channel) || 0) + 1);
        this._scheduleSync();
    }

    unsubscribe(channel) {
        const count = (this.refs.get(channel) || 0) - 1;
        if (count > 0) {
            this.refs.set(channel, count);
        } else {
            this.refs.delete(channel);
        }
        this._scheduleSync();
    }

    /** Reconnect, so that the gateway grants what Odoo grants now (a fresh token or session). */
    renewGrants() {
        if (this.socket) {
            this.socket.close(1000, "renewing grants"); // `onclose` reconnects
        }
    }

    // -- socket -----------------------------------------------------------------------------

    async _open() {
        if (this.stopped) {
            return;
        }
        if (this.cookie && this.everConnected) {
            try {
                await this.refreshGrants();
            } catch (error) {
                // Expired grants still authenticate the user's own channel; the next try renews.
                console.warn("zero_sudo_live: grants not renewed", error);
            }
            if (this.stopped) {
                return;
            }
        }
        this.onStatus("connecting");
        let socket;
        try {
            socket = new WebSocket(this.url);
        } catch (error) {
            this.onStatus("refused", String(error));
            this._retry();
            return;
        }
        this.socket = socket;
        this.authenticated = false;
        this.sent = new Set();
        this.refused = new Map(); // a fresh connection (and token) may be granted more
        socket.onopen = () => {
            if (this.cookie) {
                this.graceTimer = setTimeout(() => this._authenticateWithToken(socket), COOKIE_GRACE_MS);
            } else {
                this._authenticateWithToken(socket);
            }
        };
        socket.onmessage = (ev) => this._onFrame(socket, ev.data);
        socket.onclose = (ev) => {
            clearTimeout(this.graceTimer);
            if (this.socket === socket) {
                this.socket = null;
                this.authenticated = false;
                this.onStatus("disconnected", { code: ev.code, reason: ev.reason });
                this._retry();
            }
        };
    }

    async _authenticateWithToken(socket) {
        if (this.authenticated || socket.readyState !== WebSocket.OPEN) {
            return;
        }
        let token;
        try {
            token = await this.fetchToken();
        } catch (error) {
            this.onStatus("refused", String(error));
            socket.close(4000, "no token");
            return;
        }
        if (!this.authenticated && socket.readyState === WebSocket.OPEN) {
            socket.send(JSON.stringify({ op: "auth", token }));
        }
    }

    _retry() {
        if (this.stopped) {
            return;
        }
        const delay = backoffDelay(this.attempt++);
        this.retryTimer = setTimeout(() => this._open(), delay);
    }

    _onFrame(socket, data) {
        let message;
        try {
            message = JSON.parse(data);
        } catch {
            return;
        }
        switch (message.t) {
            case "hello":
                clearTimeout(this.graceTimer);
                this.authenticated = true;
                this.principal = message;
                this.attempt = 0;
                this.onStatus("connected", message);
                this._sync();
                if (this.everConnected) {
                    this.onResync("reconnect");
                }
                this.everConnected = true;
                break;
            case "event":
                this.onMessage(message);
                break;
            case "resync":
                this.onResync(message.reason);
                break;
            case "subscribed":
                for (const refusal of message.refused || []) {
                    this.refused.set(refusal.ch, refusal.reason);
                    this.sent.delete(refusal.ch);
                    console.warn("zero_sudo_live: channel %s refused (%s)", refusal.ch, refusal.reason);
                }
                for (const channel of message.ch || []) {
                    this.refused.delete(channel);
                }
                this.onStatus("subscribed", message);
                break;
            case "error":
                console.warn("zero_sudo_live: gateway error", message);
                break;
        }
    }

    // -- subscriptions ----------------------------------------------------------------------

    _scheduleSync() {
        if (this.batchTimer === null) {
            this.batchTimer = setTimeout(() => {
                this.batchTimer = null;
                this._sync();
            }, BATCH_MS);
        }
    }

    /** Bring the gateway's view of this socket's channels in line with `refs`. */
    _sync() {
        const socket = this.socket;
        if (!socket || !this.authenticated || socket.readyState !== WebSocket.OPEN) {
            return; // `hello` calls this again
        }
        const wanted = [...this.refs.keys()];
        const add = wanted.filter((channel) => !this.sent.has(channel) && !this.refused.has(channel));
        const remove = [...this.sent].filter((channel) => !this.refs.has(channel));
        for (let i = 0; i < remove.length; i += MAX_CHANNELS_PER_COMMAND) {
            const chunk = remove.slice(i, i + MAX_CHANNELS_PER_COMMAND);
            chunk.forEach((channel) => this.sent.delete(channel));
            socket.send(JSON.stringify({ op: "unsub", ch: chunk }));
        }
        for (let i = 0; i < add.length; i += MAX_CHANNELS_PER_COMMAND) {
            const chunk = add.slice(i, i + MAX_CHANNELS_PER_COMMAND);
            chunk.forEach((channel) => this.sent.add(channel));
            socket.send(JSON.stringify({ op: "sub", ch: chunk }));
        }
        // A refused channel (say, a model published after the token was minted) is asked for
        // again on the next connection, with a fresh token.
    }
}
