import os

from odoo import http
from odoo.http import request
from odoo.tools.cache import STAT

from odoo.addons.zero_sudo.tools.coherence import follow


class ArticleController(http.Controller):
    @http.route('/zero_sudo_test/article/<zs_slug("zero_sudo.test.article"):article>', type="http", auth="public")
    def article(self, article):
        """The article, and which worker answered (the cache benchmark follows both)."""
        return request.make_json_response({"id": article.id, "name": article.name, "pid": os.getpid()})

    @http.route("/zero_sudo_test/resolve/<string:slug>", type="http", auth="public")
    def resolve(self, slug):
        """What this worker resolves ``slug`` to (None: nothing), which worker it is, and when
        it last dropped the articles' cache entries on an event."""
        follower = follow(request.db)
        invalidated_at = follower.invalidated_at.get("zero_sudo.test.article") if follower else None
        return request.make_json_response(
            {
                "id": request.env["zero_sudo.test.article"]._resolve_slug(slug),
                "pid": os.getpid(),
                "invalidated_at": invalidated_at,
            }
        )

    @http.route("/zero_sudo_test/slug_cache_stats", type="http", auth="none")
    def slug_cache_stats(self):
        """This worker's ormcache hits and misses of the slug resolver."""
        hits = misses = 0
        for (_db, model, method), counter in list(STAT.items()):
            if model == "zero_sudo.test.article" and method.__name__ == "_resolve_valid_slug":
                hits, misses = hits + counter.hit, misses + counter.miss
        return request.make_json_response({"pid": os.getpid(), "hit": hits, "miss": misses})
