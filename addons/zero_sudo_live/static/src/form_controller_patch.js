import { onWillUnmount } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { user } from "@web/core/user";
import { useService } from "@web/core/utils/hooks";
import { patch } from "@web/core/utils/patch";
import { FormController } from "@web/views/form/form_controller";
import { useLiveModel } from "./live_hooks";

/**
 * A form follows its record: in read state (nothing unsaved) it shows the new values; with
 * unsaved changes it is never overwritten but says that someone else changed the record and
 * offers to reload (discarding the user's changes only if asked); a record deleted by someone
 * else says so.
 */
patch(FormController.prototype, {
    setup() {
        super.setup(...arguments);
        this.liveNotification = useService("notification");
        this.liveOrm = useService("orm");
        this.liveCloseNotice = null;
        const coalescer = useLiveModel({
            resModel: () => this.props.resModel,
            onEvent: (event) => this.onLiveEvent(event),
            reload: () => this.liveReload(),
        });
        this.liveCoalescer = coalescer;
        onWillUnmount(() => this.liveCloseNotice?.()); // the notice is about this form's record
    },

    /** Whether the event concerns this form's record and calls for a reload. */
    async onLiveEvent(event) {
        const root = this.model.root;
        if (root.isNew || !event.ids.includes(root.resId)) {
            return false;
        }
        if (event.op === "unlink") {
            this.liveNotice(_t("This record was deleted by someone else."), "danger", []);
            return false;
        }
        return true;
    },

    async liveReload() {
        const root = this.model.root;
        if (root.isNew) {
            return;
        }
        if (await root.isDirty()) {
            if (await this.liveChangedByMe(root)) {
                return; // this user's own save (in this tab or another) coming back
            }
            this.liveNotice(_t("Someone else changed this record. Your changes are not saved yet."), "warning", [
                {
                    name: _t("Reload"),
                    primary: true,
                    onClick: async () => {
                        this.liveCloseNotice?.();
                        await root.discard();
                        await root.load();
                    },
                },
            ]);
            return;
        }
        this.liveCloseNotice?.();
        await root.load();
    },

    /** Whether the last write to the record was this user's (then it is no news to them). */
    async liveChangedByMe(root) {
        if (!("write_uid" in root.fields)) {
            return false;
        }
        const [values] = await this.liveOrm.read(root.resModel, [root.resId], ["write_uid"], {
            context: { active_test: false },
        });
        return Boolean(values && values.write_uid && values.write_uid[0] === user.userId);
    },

    liveNotice(message, type, buttons) {
        this.liveCloseNotice?.();
        this.liveCloseNotice = this.liveNotification.add(message, {
            title: _t("Changed elsewhere"),
            type,
            sticky: true,
            buttons,
            className: "o_zero_sudo_live_notice",
        });
    },
});
