import logging
import time
from functools import partial

from odoo import _, api, fields, models

_logger = logging.getLogger(__name__)

# Rows turned into business records per transaction: large enough that the per-chunk
# queries (one look-up per stream, one batched create) dominate, small enough that a chunk
# holds its locks for well under a second.
MATERIALIZE_CHUNK = 500
# One cron run stops after this long and re-triggers itself, so that it never holds a cron
# worker for long and a crash loses at most one chunk of progress.
CRON_BUDGET_S = 60.0


def _update(record, values):
    record.write(values)
    return record


class IngestLanding(models.Model):
    """One message as it landed from RabbitMQ, then what became of it.

    Rows are inserted by the landing daemon (one multi-row INSERT per batch, de-duplicated on
    stream and external ID), never by the ORM; materialization turns them into records of the
    stream's target model, and leaves the error on the row when that fails.
    """

    _name = "zero_sudo.ingest.landing"
    _description = "Landed ingestion message"
    _order = "id desc"

    stream_id = fields.Many2one("zero_sudo.ingest.stream", required=True, index=True, ondelete="cascade")
    external_id = fields.Char(string="External ID", required=True, size=255, index="trigram")
    payload = fields.Json(readonly=True)
    state = fields.Selection(
        [("landed", "Landed"), ("done", "Materialized"), ("failed", "Failed")], required=True, default="landed", index=True
    )
    error = fields.Text(readonly=True)
    res_model = fields.Char(string="Record model", readonly=True)
    res_id = fields.Many2oneReference(string="Record", model_field="res_model", readonly=True)

    _sql_constraints = [
        ("stream_external_uniq", "unique(stream_id, external_id)", "An external ID lands once per stream."),
    ]

    def action_retry(self):
        """Failed rows go back to the queue of the next materialization."""
        self.filtered(lambda row: row.state == "failed").write({"state": "landed", "error": False})
        self.env.ref("zero_sudo_ingest.ir_cron_materialize")._trigger()

    @api.model
    def _cron_materialize(self, chunk_size=MATERIALIZE_CHUNK, budget_s=CRON_BUDGET_S):
        """Materialize landed rows chunk by chunk, committing after each chunk."""
        started = time.monotonic()
        while time.monotonic() - started < budget_s:
            rows = self.search([("state", "=", "landed")], order="id", limit=chunk_size)
            if not rows:
                return
            rows._materialize_chunk()
            # Committing here is allowed: this is the cron's own cursor, opened by ir.cron for
            # this job alone (_process_job), which Odoo's chunked crons commit as they go and
            # which ir.cron commits again after the call. Nothing else calls this method.
            # The commit releases the chunk's locks; a crash loses at most one chunk.
            self.env.cr.commit()
            self.env.invalidate_all()  # flat memory: nothing of the chunk stays in the cache
        self.env.ref("zero_sudo_ingest.ir_cron_materialize")._trigger()

    def _materialize_chunk(self):
        """One chunk: per stream, one look-up of existing records, one batched create."""
        for stream in self.stream_id:
            rows = self.filtered(lambda row, stream=stream: row.stream_id == stream)
            if not stream.target_model_id:
                rows._record_outcomes(False, {}, dict.fromkeys(rows.ids, _("The stream has no target model.")))
                continue
            rows._materialize_stream(stream)

    def _materialize_stream(self, stream):
        # Records are made as the stream's owner, under the owner's access rights: a stream
        # can only feed models its owner may write to.
        target = self.env[stream.target_model].with_user(stream.user_id)
        mapping, match = stream._mapping(), stream.match_field
        existing = {}
        if match:
            found = target.search([(match, "in", self.mapped("external_id"))])
            existing = {record[match]: record for record in found}  # one query for the chunk
        done: dict[int, int] = {}
        failed: dict[int, str] = {}
        creates = []
        for row in self:
            data = row.payload or {}
            values = {field: data[key] for key, field in mapping.items() if key in data}
            if match:
                values[match] = row.external_id
            record = existing.get(row.external_id)
            if record:
                _attempt(row, partial(_update, record, values), done, failed)
            else:
                creates.append((row, values))
        if creates:
            try:
                with self.env.cr.savepoint():
                    records = target.create([values for _row, values in creates])  # one batched INSERT
                done.update({row.id: record.id for (row, _values), record in zip(creates, records, strict=True)})
            except Exception:  # noqa: BLE001 - some row is at fault: find which, one by one
                for row, values in creates:
                    _attempt(row, partial(target.create, values), done, failed)
        self._record_outcomes(target._name, done, failed)

    def _record_outcomes(self, res_model, done, failed):
        """Two statements for the whole chunk, whatever its size."""
        self.flush_recordset()
        cr = self.env.cr
        if done:
            cr.execute(
                """UPDATE zero_sudo_ingest_landing AS l
                      SET state = 'done', error = NULL, res_model = %s, res_id = v.res_id,
                          write_uid = %s, write_date = now() AT TIME ZONE 'UTC'
                     FROM unnest(%s::int4[], %s::int4[]) AS v(id, res_id)
                    WHERE l.id = v.id""",
                (res_model, self.env.uid, list(done), list(done.values())),
            )
        if failed:
            cr.execute(
                """UPDATE zero_sudo_ingest_landing AS l
                      SET state = 'failed', error = v.error, write_uid = %s, write_date = now() AT TIME ZONE 'UTC'
                     FROM unnest(%s::int4[], %s::text[]) AS v(id, error)
                    WHERE l.id = v.id""",
                (self.env.uid, list(failed), list(failed.values())),
            )
        self.invalidate_recordset(["state", "error", "res_model", "res_id", "write_uid", "write_date"])


def _attempt(row, make_record, done, failed):
    """Run ``make_record`` for ``row`` in a savepoint; file the outcome in ``done`` or ``failed``."""
    try:
        with row.env.cr.savepoint():
            done[row.id] = make_record().id
    except Exception as exc:  # noqa: BLE001 - any failure is the row's, kept for the user to see
        _logger.info("materialization failed row=%d stream=%s error=%s", row.id, row.stream_id.code, exc)
        failed[row.id] = str(exc)[:2000]
