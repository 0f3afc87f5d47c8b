import { _t } from "@web/core/l10n/translation";
import { browser } from "@web/core/browser/browser";
import { rpc } from "@web/core/network/rpc";
import { registry } from "@web/core/registry";
import { session } from "@web/session";
import { GatewayConnection } from "./gateway_connection";

/**
 * The `zero_sudo_live` service: one gateway connection per tab, and a small public API.
 *
 *   subscribe(channel) / unsubscribe(channel)   counted; "model:res.partner"
 *   listen(topic, callback) -> stop             topic: a channel ("model:res.partner"), "user"
 *                                               (what Odoo pushed to this user), "resync"
 *                                               (events may have been missed: reload), "status"
 *
 * Pushes of type "notification" are shown with Odoo's notification service; one of type
 * "zero_sudo_live.grants_changed" (an admin published a model) makes the tab reconnect with
 * renewed grants, within a few seconds. When the server
 * sends no gateway URL (live updates off) the service is inert: the API works, nothing comes.
 */

export const LIVE_USER_TOPIC = "user";
export const LIVE_RESYNC_TOPIC = "resync";
export const LIVE_STATUS_TOPIC = "status";
// Push type (tools/push.py's PushType): the published models changed, grants must be renewed.
const GRANTS_CHANGED = "zero_sudo_live.grants_changed";
// Every internal user's tabs get that push at once: reconnections are spread over this window.
const GRANTS_RENEW_SPREAD_MS = 5000;

/** The WebSocket URL of `configured` (a path on this origin, or a ws(s):// URL), and whether
 * the session cookie reaches it (same origin). */
export function gatewayEndpoint(configured, location = browser.location) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    if (configured.startsWith("/")) {
        return { url: `${scheme}//${location.host}${configured}`, cookie: true };
    }
    const url = new URL(configured);
    return { url: url.href, cookie: url.host === location.host };
}

export const liveService = {
    dependencies: ["notification"],

    start(env, { notification }) {
        const config = session.zero_sudo_live || {};
        const listeners = new Map(); // topic -> Set(callback)
        const state = { status: "off", principal: null };

        function emit(topic, payload) {
            for (const callback of [...(listeners.get(topic) || [])]) {
                try {
                    callback(payload);
                } catch (error) {
                    console.error(error);
                }
            }
        }

        function showPush(data) {
            if (data.type !== "notification" || typeof data.message !== "string") {
                return;
            }
            const buttons = data.url
                ? [{ name: data.url_label || _t("Open"), primary: true, onClick: () => browser.open(data.url, "_blank") }]
                : [];
            notification.add(data.message, {
                title: data.title,
                type: ["info", "success", "warning", "danger"].includes(data.level) ? data.level : "info",
                sticky: Boolean(data.sticky),
                buttons,
                className: "o_zero_sudo_live_push",
            });
        }

        let connection = null;
        if (config.gateway_url) {
            const { url, cookie } = gatewayEndpoint(config.gateway_url);
            connection = new GatewayConnection({
                url,
                cookie,
                fetchToken: async () => {
                    const response = await browser.fetch(config.token_url, { credentials: "same-origin" });
                    if (!response.ok) {
                        throw new Error(`gateway token refused: HTTP ${response.status}`);
                    }
                    return (await response.text()).trim();
                },
                refreshGrants: () => rpc(config.grants_url, {}, { silent: true }),
                onMessage: (message) => {
                    if (message.ch.startsWith("user:")) {
                        const data = message.data || {};
                        if (data.type === GRANTS_CHANGED) {
                            // Spread the reconnections of every tab of the database.
                            browser.setTimeout(() => connection.renewGrants(), Math.random() * GRANTS_RENEW_SPREAD_MS);
                        }
                        showPush(data);
                        emit(LIVE_USER_TOPIC, message.data);
                    } else {
                        emit(message.ch, message);
                    }
                },
                onResync: (reason) => emit(LIVE_RESYNC_TOPIC, reason),
                onStatus: (status, detail) => {
                    if (["connecting", "connected", "disconnected", "refused"].includes(status)) {
                        state.status = status;
                        if (status === "connected") {
                            state.principal = detail;
                        }
                    }
                    emit(LIVE_STATUS_TOPIC, { status, detail });
                },
            });
            if (config.uid) {
                connection.subscribe(`user:${config.uid}`);
            }
            connection.start();
        }

        return {
            /** Whether this tab follows the gateway at all. */
            get enabled() {
                return Boolean(connection);
            },
            /** "off", "connecting", "connected", "disconnected" or "refused". */
            get status() {
                return state.status;
            },
            /** Milliseconds between two reloads of one view, at least. */
            coalesceMs: config.coalesce_ms || 500,
            subscribe(channel) {
                connection?.subscribe(channel);
            },
            unsubscribe(channel) {
                connection?.unsubscribe(channel);
            },
            listen(topic, callback) {
                if (!listeners.has(topic)) {
                    listeners.set(topic, new Set());
                }
                listeners.get(topic).add(callback);
                return () => listeners.get(topic)?.delete(callback);
            },
        };
    },
};

registry.category("services").add("zero_sudo_live", liveService);
