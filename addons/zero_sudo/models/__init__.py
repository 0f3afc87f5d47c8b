from . import change_event_mixin, health, res_users, security_utils, task
