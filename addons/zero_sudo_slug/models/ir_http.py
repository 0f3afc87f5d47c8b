import werkzeug.routing

from odoo import api, models
from odoo.http import request

from odoo.addons.base.models.ir_http import RequestUID

from ..tools.slugs import SLUG_PATTERN


class SlugConverter(werkzeug.routing.BaseConverter):
    """``<zs_slug("blog.post"):post>``: the record with that slug, or a 404."""

    regex = SLUG_PATTERN.pattern

    def __init__(self, url_map, model=False):
        super().__init__(url_map)
        self.model = model

    def to_python(self, value):
        record_id = request.env[self.model]._resolve_slug(value)
        if record_id is None:
            raise werkzeug.routing.ValidationError()  # no rule matches: 404
        env = api.Environment(request.cr, RequestUID(value=value, converter=self), request.context)
        return env[self.model].browse(record_id)

    def to_url(self, value):
        return value.slug


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _get_converters(cls):
        return {**super()._get_converters(), "zs_slug": SlugConverter}
