import { patch } from "@web/core/utils/patch";
import { KanbanController } from "@web/views/kanban/kanban_controller";
import { useLiveMultiRecordView } from "./live_hooks";

/** A kanban follows its model's changes in place: columns, folded groups and selection kept;
 * not while a card is being quick-created or edited. */
patch(KanbanController.prototype, {
    setup() {
        super.setup(...arguments);
        useLiveMultiRecordView(this);
    },
});
