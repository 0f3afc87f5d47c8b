import { patch } from "@web/core/utils/patch";
import { ListController } from "@web/views/list/list_controller";
import { useLiveMultiRecordView } from "./live_hooks";

/** A list follows its model's changes in place: page, order, groups and selection kept. A row
 * being edited is never reloaded under the user's fingers: the reload waits for the edit. */
patch(ListController.prototype, {
    setup() {
        super.setup(...arguments);
        useLiveMultiRecordView(this);
    },
});
