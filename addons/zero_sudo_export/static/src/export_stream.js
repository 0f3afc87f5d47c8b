/**
 * The export dialog's streamed formats ("CSV (streamed)", "XLSX (streamed)", "JSON (streamed)",
 * listed by the server's /web/export/formats).
 *
 * The dialog hands every export to the web client's `download()`, which posts the request with
 * an XMLHttpRequest and saves the file only once the whole of it sits in the tab's memory. For
 * a streamed format that is the wrong way round: `download()` is patched, for those URLs only,
 * to ask the server first (/zero_sudo/export/dialog/plan: refusals arrive as ordinary RPC
 * errors, and an export past the background threshold is queued, the user told so), then to
 * post the very same form natively into a hidden frame, so that the browser's own download
 * manager takes the file as it comes: the download starts at once, and the tab holds nothing.
 *
 * Without zero_sudo_live, a finished background export is announced on Odoo's bus
 * ("zero_sudo_export/ready"); the service below shows it with a Download button (with
 * zero_sudo_live, its own notice of the finished task does, with an Open button).
 */
import { browser } from "@web/core/browser/browser";
import { _t } from "@web/core/l10n/translation";
import { download } from "@web/core/network/download";
import { rpc } from "@web/core/network/rpc";
import { registry } from "@web/core/registry";
import { patch } from "@web/core/utils/patch";

const STREAMED = /^\/web\/export\/(zs_csv|zs_xlsx|zs_json)$/;
// The hidden frame stays until it shows an error page or this long has passed: removing it
// before the server's answer arrives would cancel the download.
const FRAME_LIFETIME_MS = 60 * 60 * 1000;

let frames = 0;
// The notification service, kept by the service below when the web client starts: the patched
// download() runs outside any component and has no env to ask.
let notifications = null;

function notify(message, type, sticky = false) {
    notifications?.add(message, { type, sticky });
}

/** Post `fields` to `url` as a plain form into a hidden frame; an error page becomes `onError`. */
function nativePost(url, fields, onError) {
    const doc = browser.document || document;
    const name = `o_zs_export_frame_${++frames}`;
    const frame = doc.createElement("iframe");
    frame.name = name;
    frame.className = "o_zs_export_frame d-none";
    const remove = () => frame.remove();
    frame.addEventListener("load", () => {
        // A download never loads the frame: a load is an error page (Odoo's JSON error).
        // As download() reads it: the JSON error is the text of the page's last element.
        const body = frame.contentDocument?.body;
        const nodes = body?.children.length ? body.children : [body];
        const text = nodes[nodes.length - 1]?.textContent || "";
        let message = text;
        try {
            const error = JSON.parse(text);
            message = error.data?.message || error.message || text;
        } catch {
            // not Odoo's JSON error: show the page's text as it is
        }
        remove();
        if (message) {
            onError(message);
        }
    });
    setTimeout(remove, FRAME_LIFETIME_MS);
    doc.body.appendChild(frame);
    const form = doc.createElement("form");
    form.method = "POST";
    form.action = url;
    form.target = name;
    form.className = "d-none";
    for (const [key, value] of Object.entries(fields)) {
        const input = doc.createElement("input");
        input.type = "hidden";
        input.name = key;
        input.value = value;
        form.appendChild(input);
    }
    doc.body.appendChild(form);
    form.submit();
    form.remove();
}

async function streamedDownload(options, format) {
    const plan = await rpc("/zero_sudo/export/dialog/plan", { data: options.data.data, format });
    if (plan.mode === "background") {
        notify(
            _t(
                "%(count)s records: this export runs in the background. You will be notified when the file is ready.",
                { count: plan.records }
            ),
            "info",
            true
        );
        return;
    }
    if (plan.mode === "busy") {
        notify(_t("Too many exports are running; try again in a moment."), "warning");
        return;
    }
    const fields = { ...options.data, token: "dummy-because-api-expects-one" };
    if (odoo.csrf_token) {
        fields.csrf_token = odoo.csrf_token;
    }
    nativePost(options.url, fields, (message) => notify(message, "danger", true));
}

patch(download, {
    _download(options) {
        const match = !options.form && options.url && STREAMED.exec(options.url);
        if (!match) {
            return super._download(options);
        }
        return streamedDownload(options, match[1]);
    },
});

export const exportReadyService = {
    dependencies: ["bus_service", "notification"],
    start(env, { bus_service, notification }) {
        notifications = notification;
        bus_service.subscribe("zero_sudo_export/ready", ({ title, message, url }) => {
            notification.add(message, {
                title,
                type: url ? "success" : "danger",
                sticky: true,
                className: "o_zs_export_ready",
                buttons: url
                    ? [{ name: _t("Download"), primary: true, onClick: () => browser.open(url, "_self") }]
                    : [],
            });
        });
    },
};

registry.category("services").add("zero_sudo_export_ready", exportReadyService);
