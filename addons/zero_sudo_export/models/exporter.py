import hashlib
import logging
import os
import tempfile

from odoo import api, models

from ..tools.streaming import PathTree, flatten, render

_logger = logging.getLogger(__name__)

# Records per chunk: each chunk costs a fixed number of queries (one search, one read, one
# read per relation), so large chunks amortize them, while the chunk's records are all the
# memory an export ever holds.
CHUNK_SIZE = 1000
MAX_CHUNK_SIZE = 10_000
RELATIONAL = ("many2one", "one2many", "many2many")


class Exporter(models.AbstractModel):
    """Exports any model's records as JSON rows, chunk by chunk, as the current user.

    Records are read in keyset-paginated chunks (``id > last_id``, never OFFSET, so the
    millionth row costs what the first did), related values of a chunk are fetched with one
    read per relation for the whole chunk, and the ORM cache is emptied between chunks: memory
    stays flat whatever the number of records. Access rights and record rules are the user's
    (no sudo): a record or a related record the user may not read is not exported.
    """

    _name = "zero_sudo.export"
    _description = "zero_sudo: streaming export"

    @api.model
    def _check_request(self, model_name, paths):
        """Raise ValueError/AccessError for an export that could not run; the path tree."""
        if model_name not in self.env:
            raise ValueError("no model %r" % model_name)
        model = self.env[model_name]
        model.check_access("read")
        tree = PathTree.parse(paths)
        self._check_tree(model, tree)
        return tree

    def _check_tree(self, model, tree):
        for name, sub in tree.children.items():
            field = model._fields.get(name)
            if field is None:
                raise ValueError("%s has no field %r" % (model._name, name))
            if sub.children:
                if field.type != "many2one":
                    raise ValueError("dotted paths go through many2one fields; %s.%s is a %s" % (model._name, name, field.type))
                self._check_tree(self.env[field.comodel_name], sub)

    @api.model
    def _export_rows(self, model_name, domain, paths, chunk_size=CHUNK_SIZE):
        """Yield one flat dict per record: ``{"id": 7, "name": ..., "partner_id.name": ...}``."""
        tree = self._check_request(model_name, paths)
        model = self.env[model_name]
        chunk_size = max(1, min(int(chunk_size), MAX_CHUNK_SIZE))
        last_id = 0
        while True:
            records = model.search([*domain, ("id", ">", last_id)], order="id", limit=chunk_size)
            if not records:
                return
            values = self._fetch(records, tree)
            for record_id in records.ids:
                yield {"id": record_id, **flatten(values[record_id], tree)}
            last_id = records.ids[-1]
            self.env.invalidate_all()  # nothing of this chunk stays in memory

    def _fetch(self, records, tree):
        """``{id: {field: value}}`` for ``records``; one read, plus one per relation followed."""
        fields = list(tree.children)
        rows = {row["id"]: row for row in records.read(fields, load=None)}
        for name, sub in tree.children.items():
            if not sub.children:
                continue
            comodel = self.env[records._fields[name].comodel_name]
            target_ids = {row[name] for row in rows.values() if row[name]}
            readable = comodel.browse(target_ids)._filtered_access("read")
            related = self._fetch(readable, sub) if readable else {}
            for row in rows.values():
                row[name] = related.get(row[name])
        return rows

    @api.model
    def _export_to_attachment(self, model_name, domain, paths, fmt, name):
        """Write the export to a file, then file it as an attachment: only a complete export
        ever becomes an attachment. Runs as a zero_sudo task, through the bounded executor."""
        attachments = self.env["ir.attachment"]
        directory = attachments._filestore()
        os.makedirs(directory, exist_ok=True)
        digest, size = hashlib.sha1(), 0
        handle, temp_path = tempfile.mkstemp(prefix="zero_sudo_export_", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                for piece in render(self._export_rows(model_name, domain, paths), fmt):
                    out.write(piece)
                    digest.update(piece)
                    size += len(piece)
            checksum = digest.hexdigest()
            store_fname = "%s/%s" % (checksum[:2], checksum)
            full_path = attachments._full_path(store_fname)
            os.makedirs(os.path.dirname(full_path), exist_ok=True)
            if os.path.exists(full_path):
                os.unlink(temp_path)  # the same content is already in the filestore
            else:
                os.replace(temp_path, full_path)
                attachments._mark_for_gc(store_fname)  # removed again if this transaction aborts
        except BaseException:
            if os.path.exists(temp_path):
                os.unlink(temp_path)
            raise
        attachment = attachments.create(
            {"name": name, "type": "binary", "mimetype": "application/json" if fmt == "json" else "application/x-ndjson"}
        )
        # ir.attachment only files content it holds in memory (raw/datas); the file is already
        # in the filestore, so point the attachment at it instead of reading it back.
        attachment.flush_recordset()
        self.env.cr.execute(
            "UPDATE ir_attachment SET store_fname = %s, checksum = %s, file_size = %s WHERE id = %s",
            (store_fname, checksum, size, attachment.id),
        )
        attachment.invalidate_recordset()
        return attachment
