import hashlib
import logging
import os
import tempfile

from odoo import api, models

from ..tools.streaming import PathTree, leaves, render

_logger = logging.getLogger(__name__)

# Records per chunk: each chunk costs a fixed number of queries (one search_fetch, one per
# relation followed, one read() if x2many or computed fields are asked), so large chunks amortize them, while the chunk's records are all the
# memory an export ever holds.
CHUNK_SIZE = 1000
MAX_CHUNK_SIZE = 10_000
# Field types whose cache value, once search_fetch stored it, is what the export writes:
# plain columns (converted as the ORM does for a record: None becomes False or 0) and
# many2one IDs. x2many (active filter), binary (attachments), company-dependent and computed
# fields go through read() instead.
CACHE_EXPORTABLE = (
    "boolean",
    "integer",
    "float",
    "monetary",
    "char",
    "text",
    "html",
    "selection",
    "date",
    "datetime",
    "many2one",
)


def _from_cache(field) -> bool:
    """Whether search_fetch leaves ``field``'s exported value in the cache."""
    return bool(field.store and field.column_type and not field.company_dependent and field.type in CACHE_EXPORTABLE)


def _cached_values(records, field) -> list:
    """``field``'s values for ``records``, taken from the cache where search_fetch left them."""
    values = records.env.cache.get_until_miss(records, field)
    if len(values) < len(records):  # evicted meanwhile: let the ORM fetch it again
        return [row[field.name] for row in records.read([field.name], load=None)]
    if field.type == "many2one":
        return [value or False for value in values]
    convert = field.convert_to_record
    return [convert(value, records) for value in values]


class Exporter(models.AbstractModel):
    """Exports any model's records as JSON rows, chunk by chunk, as the current user.

    Records are read in keyset-paginated chunks (``id > last_id``, never OFFSET, so the
    millionth row costs what the first did), related values of a chunk are fetched with one
    query per relation for the whole chunk, and the ORM cache is emptied between chunks: memory
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
        keys = ["id", *leaves(tree)]
        last_id = 0
        while True:
            records = model.search_fetch([*domain, ("id", ">", last_id)], list(tree.children), order="id", limit=chunk_size)
            if not records:
                return
            columns = [list(records._ids), *self._columns(records, tree)]
            for values in zip(*columns, strict=True):
                yield dict(zip(keys, values, strict=True))
            last_id = records._ids[-1]
            self.env.invalidate_all()  # nothing of this chunk stays in memory

    def _columns(self, records, tree):
        """The chunk column by column, in the order of ``leaves(tree)``: one list of values per
        exported path, aligned with ``records``.

        ``records`` were fetched by ``search_fetch``: plain columns and many2one IDs are taken
        from the ORM cache as they are (as ``export_data`` does), which costs a fraction of
        ``read()``'s per-value conversion; other fields (x2many, binary, computed) go through
        one ``read()`` for the whole chunk. Each many2one followed costs one more
        ``search_fetch`` of its targets, under the user's record rules.
        """
        slow = [name for name in tree.children if not _from_cache(records._fields[name])]
        rows = records.read(slow, load=None) if slow else []
        columns = []
        for name, sub in tree.children.items():
            field = records._fields[name]
            values = [row[name] for row in rows] if name in slow else _cached_values(records, field)
            if not sub.children:
                columns.append(values)
                continue
            targets = self._readable_targets(field.comodel_name, {value for value in values if value}, sub)
            position = {target_id: index for index, target_id in enumerate(targets._ids)}
            sub_columns = self._columns(targets, sub) if targets else [[] for _leaf in leaves(sub)]
            for sub_values in sub_columns:
                columns.append([sub_values[position[value]] if value in position else None for value in values])
        return columns

    def _readable_targets(self, comodel_name, target_ids, tree):
        """The targets of a many2one the user may read, with ``tree``'s fields fetched; one query.

        Archived targets still count (a contact's archived company is still its company); a
        target hidden by a record rule, or a model the user may not read, exports as null.
        """
        comodel = self.env[comodel_name].with_context(active_test=False)
        if not target_ids or not comodel.browse().has_access("read"):
            return comodel.browse()
        return comodel.search_fetch([("id", "in", list(target_ids))], list(tree.children), order="id")

    @api.model
    def _export_to_attachment(self, model_name, domain, paths, fmt, name):
        """Write the export to a file, then file it as an attachment: only a complete export
        ever becomes an attachment. Runs as a zero_sudo task, through the bounded executor."""
        mimetype = "application/json" if fmt == "json" else "application/x-ndjson"
        return self._file_attachment(render(self._export_rows(model_name, domain, paths), fmt), name, mimetype)

    @api.model
    def _file_attachment(self, pieces, name, mimetype):
        """An attachment of the bytes ``pieces`` yield, written to the filestore as they come:
        the file is never whole in memory, and an export that fails leaves no attachment."""
        attachments = self.env["ir.attachment"]
        directory = attachments._filestore()
        os.makedirs(directory, exist_ok=True)
        digest, size = hashlib.sha1(), 0
        handle, temp_path = tempfile.mkstemp(prefix="zero_sudo_export_", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                for piece in pieces:
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
        attachment = attachments.create({"name": name, "type": "binary", "mimetype": mimetype})
        # ir.attachment only files content it holds in memory (raw/datas); the file is already
        # in the filestore, so point the attachment at it instead of reading it back.
        attachment.flush_recordset()
        self.env.cr.execute(
            "UPDATE ir_attachment SET store_fname = %s, checksum = %s, file_size = %s WHERE id = %s",
            (store_fname, checksum, size, attachment.id),
        )
        attachment.invalidate_recordset()
        return attachment
