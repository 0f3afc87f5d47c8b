from . import base, ir_http, ir_model, zero_sudo_live, zero_sudo_task
