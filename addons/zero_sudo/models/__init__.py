from . import change_event_mixin, res_users, security_utils, task
