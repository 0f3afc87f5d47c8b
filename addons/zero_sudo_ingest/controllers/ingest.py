import json
import logging

from zero_sudo_bus.ingest import (
    EXCHANGE,
    IngestMessage,
    check_external_id,
    encode_ingest_message,
    routing_key,
    topology,
)

from odoo import http
from odoo.http import request

from odoo.addons.zero_sudo.tools.amqp_pool import (
    CONNECTION_ERRORS,
    Outgoing,
    PoolExhausted,
    PublishNotConfirmed,
    declare_topology,
)
from odoo.addons.zero_sudo.tools.pools import amqp_pool, amqp_publish
from odoo.addons.zero_sudo.tools.settings import settings_from_odoo_conf

from ..tools.schema import validate

_logger = logging.getLogger(__name__)

MAX_MESSAGES_PER_REQUEST = 1000  # a batch is confirmed message by message before the 202
RETRY_AFTER_S = 5

_declared: set[str] = set()  # databases whose topology this process declared (broker state: once is enough)


def _ensure_topology(db_name):
    if db_name not in _declared:
        with amqp_pool().channel() as channel:
            declare_topology(channel, topology(db_name))
        _declared.add(db_name)


def _error(status, message, **extra):
    headers = [("Retry-After", str(RETRY_AFTER_S))] if status == 503 else []
    return request.make_json_response({"error": message, **extra}, headers=headers, status=status)


class IngestController(http.Controller):
    @http.route("/zero_sudo/ingest/<string:code>", type="http", auth="bearer", methods=["POST"], csrf=False, save_session=False)
    def ingest(self, code, **_params):
        """Accept one message (a JSON object) or a batch (an array), or say precisely why not.

        202 only once RabbitMQ confirmed every message. 400 not JSON; 401 bad API key (Odoo's
        bearer authentication); 404 no such active stream for this key's user; 411 no
        Content-Length; 413 too large;
        422 a message breaks the stream's schema (reasons per message; nothing is queued);
        503 RabbitMQ unavailable, with Retry-After.
        """
        limit = settings_from_odoo_conf().ingest_max_body_bytes
        length = request.httprequest.content_length
        if length is None:
            return _error(411, "a Content-Length header is required")
        if length > limit:
            return _error(413, "body larger than %d bytes" % limit)
        try:
            payload = json.loads(request.httprequest.get_data())
        except ValueError as exc:
            return _error(400, "body is not JSON: %s" % exc)
        messages = payload if isinstance(payload, list) else [payload]
        if not messages:
            return _error(400, "empty batch")
        if len(messages) > MAX_MESSAGES_PER_REQUEST:
            return _error(413, "at most %d messages per request" % MAX_MESSAGES_PER_REQUEST)

        # As the API key's user: record rules decide which streams it may publish to.
        stream = request.env["zero_sudo.ingest.stream"].search([("code", "=", code)], limit=1)
        if not stream:
            return _error(404, "no active stream %r for this API key" % code)
        schema, id_field = stream._schema(), stream.external_id_field
        outgoing, problems = [], []
        for index, message in enumerate(messages):
            reasons = validate(schema, message) if isinstance(message, dict) else ["$: expected a JSON object"]
            if not reasons:
                try:
                    external_id = check_external_id(message.get(id_field))
                except ValueError as exc:
                    reasons = ["$.%s: %s" % (id_field, exc)]
            if reasons:
                problems.append({"index": index, "reasons": reasons})
                continue
            body = encode_ingest_message(IngestMessage(stream.code, external_id, message))
            outgoing.append(Outgoing(routing_key(request.db, stream.code), body, external_id))
        if problems:
            return _error(422, "messages do not match the stream's schema; nothing was queued", messages=problems)
        try:
            _ensure_topology(request.db)
            amqp_publish(EXCHANGE, outgoing)  # through zero_sudo's module-level pool
        except (PublishNotConfirmed, PoolExhausted, *CONNECTION_ERRORS) as exc:
            _logger.warning("ingest publish failed stream=%s messages=%d error=%s", code, len(outgoing), exc)
            return _error(
                503, "the message queue is unavailable; retry the whole batch later (what was already queued is de-duplicated)"
            )
        return request.make_json_response({"accepted": [message.message_id for message in outgoing]}, status=202)
