from . import ir_http, slug_mixin
