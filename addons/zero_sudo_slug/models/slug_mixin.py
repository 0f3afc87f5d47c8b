import logging

import psycopg2.errors

from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError

from ..tools.slugs import is_slug_of, is_valid_slug, next_free_slug, slugify

_logger = logging.getLogger(__name__)

# Candidates tried per record: under the advisory lock a conflict only comes from a
# transaction that committed after ours took its snapshot, so two or three are the most
# ever needed; the bound turns a logic error into a clear failure instead of a loop.
MAX_SLUG_ATTEMPTS = 20


class SlugMixin(models.AbstractModel):
    """A stored slug, unique per model, made from ``_slug_source_field``.

    * Resolution (:meth:`_resolve_slug`) is an ``@tools.ormcache`` lookup keyed by the model:
      after the first hit a worker answers without a query, and a slug change drops just this
      model's entries on every worker (zero_sudo's change events, not a global cache clear).
    * A renamed record gets a new slug; the old one then resolves to nothing (no history).
    * Two workers creating the same title at once get two slugs: the choice happens under
      a transaction-scoped advisory lock on (model, base slug), through zero_sudo. Odoo runs
      in REPEATABLE READ, so the second worker's snapshot may predate the first one's commit:
      the unique constraint then refuses the candidate, and the next one is tried.
    * Garbage (empty, 10 kB, unicode, SQL- or path-like) resolves to None without a query.
    """

    _name = "zero_sudo.slug.mixin"
    _inherit = ["zero_sudo.change.event.mixin"]
    _description = "zero_sudo: slug"
    _slug_source_field = "name"

    slug = fields.Char(index="trigram", copy=False, readonly=True)

    _sql_constraints = [("slug_uniq", "unique(slug)", "Slugs are unique per model.")]

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        records._assign_slugs()
        return records

    def write(self, vals):
        result = super().write(vals)
        if self._slug_source_field in vals:
            self._assign_slugs()
        return result

    def _assign_slugs(self):
        """Give each record the slug of its title, or the first free variant of it."""
        locks = self.env["zero_sudo.security.utils"]
        for record in self:
            base = slugify(record[self._slug_source_field])
            if is_slug_of(record.slug, base):
                continue  # still the slug of this title
            locks._advisory_xact_lock("zero_sudo.slug", self._name, base)
            self.flush_model(["slug"])
            self.env.cr.execute(
                'SELECT slug FROM "%s" WHERE (slug = %%s OR slug LIKE %%s) AND id != %%s' % self._table,
                (base, base + "-%", record.id),
            )
            taken = {slug for (slug,) in self.env.cr.fetchall()}
            record._write_first_free_slug(base, taken)

    def _write_first_free_slug(self, base, taken):
        for _attempt in range(MAX_SLUG_ATTEMPTS):
            candidate = next_free_slug(base, taken)
            try:
                with self.env.cr.savepoint():
                    super().write({"slug": candidate})
                    self.flush_recordset(["slug"])
                return
            except psycopg2.errors.UniqueViolation:
                taken.add(candidate)  # committed after our snapshot was taken
        raise UserError(_("No free slug for %(title)r after %(n)d attempts", title=base, n=MAX_SLUG_ATTEMPTS))

    @api.model
    def _resolve_slug(self, slug):
        """The ID of the record with this slug, or None; garbage costs no query at all."""
        if not is_valid_slug(slug):
            return None
        return self._resolve_valid_slug(slug)

    @api.model
    @tools.ormcache("slug")
    def _resolve_valid_slug(self, slug):
        # A plain SQL read of an ID: whoever uses the record reads it with their own rights.
        self.flush_model(["slug"])
        self.env.cr.execute('SELECT id FROM "%s" WHERE slug = %%s' % self._table, (slug,))
        row = self.env.cr.fetchone()
        return row[0] if row else None
