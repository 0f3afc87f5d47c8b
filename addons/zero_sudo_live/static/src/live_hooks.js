import { onMounted, onWillUnmount } from "@odoo/owl";
import { useService } from "@web/core/utils/hooks";
import { Coalescer } from "./coalescer";
import { LIVE_RESYNC_TOPIC } from "./live_service";

/**
 * Follow a model's channel while the calling component is on screen.
 *
 * Subscribes when mounted and unsubscribes when unmounted (a view left for another one in the
 * breadcrumbs is unmounted). Every change event of the model goes to `onEvent(event)`, which
 * returns true when the view must reload; reloads run through a {@link Coalescer}: at most one
 * per `coalesceMs` (500 ms) per view, and none while the tab is hidden or `canReload()` says
 * no (a list row being edited): they happen once it is visible, or allowed, again. A `resync`
 * (events may have been missed) reloads each visible view once.
 *
 * @param {Object} params
 * @param {() => string} params.resModel
 * @param {() => Promise<void>} params.reload
 * @param {(event: Object) => boolean|Promise<boolean>} [params.onEvent]
 * @param {() => boolean} [params.canReload]
 */
export function useLiveModel({ resModel, reload, onEvent = () => true, canReload = () => true }) {
    const live = useService("zero_sudo_live");
    if (!live.enabled) {
        return null;
    }
    const coalescer = new Coalescer(reload, live.coalesceMs, {
        isReady: () => !document.hidden && canReload(),
    });
    const stops = [];
    let channel = null;
    onMounted(() => {
        channel = `model:${resModel()}`;
        stops.push(
            live.listen(channel, async (event) => {
                if (await onEvent(event)) {
                    coalescer.schedule();
                }
            }),
            live.listen(LIVE_RESYNC_TOPIC, () => coalescer.schedule())
        );
        live.subscribe(channel);
    });
    onWillUnmount(() => {
        stops.forEach((stop) => stop());
        coalescer.cancel();
        if (channel) {
            live.unsubscribe(channel);
        }
    });
    return coalescer;
}

/**
 * Reload a list or kanban model in place: same page, same order, same open groups (all in the
 * model's config, which `root.load()` keeps), and the same records selected.
 */
export async function reloadInPlace(model) {
    if (model.useSampleModel) {
        // Sample records stand for "nothing yet": once there is something, show it for real.
        const { resModel, domain, context } = model.config;
        if (await model.orm.searchCount(resModel, domain, { context, limit: 1 })) {
            model.useSampleModel = false;
            await model.load();
        }
        return;
    }
    const root = model.root;
    const selected = new Set(root.selection.map((record) => record.resId));
    await root.load();
    if (selected.size) {
        for (const record of model.root.records) {
            if (selected.has(record.resId)) {
                record.selected = true;
            }
        }
    }
}

/**
 * What a list or kanban controller does to follow its model: reload in place on a change, but
 * not while a row or card is being edited (the reload waits for the edit to end).
 */
export function useLiveMultiRecordView(controller) {
    return useLiveModel({
        resModel: () => controller.props.resModel,
        reload: () => reloadInPlace(controller.model),
        canReload: () => !controller.model.root.editedRecord,
    });
}
