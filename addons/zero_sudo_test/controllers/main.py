from odoo import http
from odoo.http import request


class ArticleController(http.Controller):
    @http.route('/zero_sudo_test/article/<zs_slug("zero_sudo.test.article"):article>', type="http", auth="public")
    def article(self, article):
        return request.make_json_response({"id": article.id, "name": article.name})
