"""Which erasure rules a database needs, from a plain description of its models.

Pure on purpose (no Odoo import): the planning is tested with plain models in
tests/test_gdpr_rule_planning.py, and the Odoo side only describes the registry
(``zero_sudo.gdpr.rule._model_infos``) and files what this proposes.

Where a person's data lives, as Odoo's privacy_lookup looks for it: every stored link to a
contact (many2one to res.partner, or a many2one_reference whose model is res.partner, such as
a contact's chatter and attachments), and the contact itself. What to do there comes from
curated defaults for base, mail and contacts when the model is installed, otherwise from the
link: a record that exists only for the person (the link is required or cascades) is deleted;
otherwise its personal-looking text fields (names, emails, phones, addresses, free text) are
anonymized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PARTNER = "res.partner"
SELF = "id"  # the link of the contact to itself: the rule erasing the contact record

# Personal-looking text fields: what anonymizing a record linked to the person overwrites.
PERSONAL = re.compile(
    r"(email|phone|mobile|name|street|zip|city|address|body|note|summary|description|comment|subject|content|number|reply_to|function|website|vat|login|message|info)"
)
# Technical text that merely matches PERSONAL (model names, message IDs, layouts, tokens).
TECHNICAL = re.compile(r"(^model$|_model$|message_id|xmlid|uuid|token|_path$|color|^lang$|^tz$|^type$|^state$|signup_|res_name)")

# What the person's own contact record loses: the fields of base and mail holding their
# identity and whereabouts. Barcode and the like are left: they are unique per company (two
# erased contacts could not share "[erased]") and say nothing about the person; so does the
# free-text employer name (company_name), which "[erased]" would turn into a company.
CONTACT_FIELDS = (
    "name",
    "email",
    "phone",
    "mobile",
    "street",
    "street2",
    "zip",
    "city",
    "website",
    "comment",
    "function",
    "ref",
    "vat",
    "additional_info",
)


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    string: str = ""
    comodel: str | None = None
    store: bool = True
    writable: bool = True  # neither computed (without inverse) nor related
    required: bool = False
    ondelete: str | None = None
    model_field: str | None = None  # for many2one_reference: the field holding the model name
    unique: bool = False  # part of a UNIQUE constraint: one shared "[erased]" would clash


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    fields: tuple[FieldInfo, ...]

    def field(self, name: str) -> FieldInfo | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Default:
    """A curated rule for a link (``action`` None: no rule there, ``why`` says why)."""

    action: str | None
    why: str
    field_names: tuple[str, ...] = ()
    extra_domain: tuple = ()
    sequence: int | None = None
    label: str | None = None  # the rule's name, when the link's label would not say it


@dataclass(frozen=True)
class Proposal:
    name: str
    model: str
    partner_field: str
    action: str  # "anonymize" or "delete"
    field_names: tuple[str, ...]
    extra_domain: list = field(default_factory=list)
    sequence: int = 50
    why: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a rule when proposing again: one proposal per link and action."""
        return (self.model, self.partner_field, self.action)


# Order of the erasure: what belongs to the person goes first (deleted), then what mentions
# them (anonymized), and the contact itself last, so that every rule before it still finds
# the person as they were and the contact's form shows the request's progress to the end.
SEQUENCE_DELETE, SEQUENCE_ANONYMIZE, SEQUENCE_CONTACT = 10, 50, 1000

DEFAULTS: dict[tuple[str, str], Default] = {
    (PARTNER, SELF): Default(
        "anonymize",
        "The contact itself, last: every other rule finds the person until then",
        CONTACT_FIELDS,
        sequence=SEQUENCE_CONTACT,
    ),
    (PARTNER, "parent_id"): Default(
        "anonymize",
        "The person's addresses (invoice, delivery, ...); their contacts, people of their own, are left",
        CONTACT_FIELDS,
        (("type", "!=", "contact"),),
        label="Contact: the person's addresses",
    ),
    ("res.users", "partner_id"): Default(
        None, "A user account: an administrator archives it (its login is not the eraser's to change)"
    ),
    ("res.company", "partner_id"): Default(None, "A company of this database, not a person"),
    ("mail.message", "author_id"): Default(
        "anonymize",
        "Messages the person wrote: their text and sender, kept as '[erased]' in the threads",
        ("subject", "body", "email_from", "reply_to", "record_name"),
    ),
    ("mail.message", "res_id"): Default("delete", "The contact's own chatter (its tracked values hold former emails and phones)"),
    ("mail.followers", "partner_id"): Default("delete", "The person no longer follows any document"),
    ("mail.followers", "res_id"): Default("delete", "Followers of the contact's own record"),
    ("mail.notification", "res_partner_id"): Default("delete", "Notifications sent to the person"),
    ("mail.activity", "res_id"): Default("delete", "Activities planned on the contact"),
    ("ir.attachment", "res_id"): Default("delete", "Files attached to the contact"),
    ("discuss.channel.member", "partner_id"): Default("delete", "The person leaves every discussion channel"),
    ("res.partner.bank", "partner_id"): Default("delete", "The person's bank accounts"),
}

# Bookkeeping that links to a person without holding their data, or that the eraser itself
# keeps (its requests say what was erased, never the data).
SKIPPED_MODELS = ("zero_sudo.gdpr.request", "zero_sudo.gdpr.request.line", "zero_sudo.gdpr.rule", "privacy.log", "ir.model.data")


SELF_LINK = FieldInfo(SELF, "integer", "the contact itself")


def partner_links(model: ModelInfo) -> list[FieldInfo]:
    """The stored fields of ``model`` pointing at one contact (plus ``id`` for res.partner)."""
    links = [SELF_LINK] if model.name == PARTNER else []
    for f in model.fields:
        if not f.store:
            continue
        if f.type == "many2one" and f.comodel == PARTNER:
            links.append(f)
        elif f.type == "many2one_reference" and f.model_field and model.field(f.model_field) is not None:
            links.append(f)
    return links


def personal_fields(model: ModelInfo) -> tuple[str, ...]:
    """Text fields of ``model`` that look personal and that a write can overwrite."""
    return tuple(
        f.name
        for f in model.fields
        if f.type in ("char", "text", "html")
        and f.store
        and f.writable
        and not f.unique
        and PERSONAL.search(f.name)
        and not TECHNICAL.search(f.name)
    )


def propose_rule(model: ModelInfo, link: FieldInfo) -> Proposal | str:
    """The rule for records of ``model`` linked to the person by ``link``, or why there is none."""
    default = DEFAULTS.get((model.name, link.name))
    label = "%s: %s" % (model.description, link.string or link.name)
    extra = [[link.model_field, "=", PARTNER]] if link.type == "many2one_reference" else []
    if link.name != SELF and not link.writable:
        return "%s is computed from another link" % label
    if default is not None:
        if default.action is None:
            return default.why
        names = tuple(name for name in default.field_names if model.field(name) is not None)
        sequence = default.sequence or (SEQUENCE_DELETE if default.action == "delete" else SEQUENCE_ANONYMIZE)
        return Proposal(
            default.label or label,
            model.name,
            link.name,
            default.action,
            names,
            [*extra, *map(list, default.extra_domain)],
            sequence,
            default.why,
        )
    if link.type == "many2one_reference":
        return Proposal(
            label, model.name, link.name, "delete", (), extra, SEQUENCE_DELETE, "Records attached to the contact's own record"
        )
    if link.required or link.ondelete == "cascade":
        return Proposal(
            label, model.name, link.name, "delete", (), extra, SEQUENCE_DELETE, "Records that exist only for the person"
        )
    names = personal_fields(model)
    if not names:
        return "%s: no personal text to anonymize" % label
    return Proposal(
        label,
        model.name,
        link.name,
        "anonymize",
        names,
        extra,
        SEQUENCE_ANONYMIZE,
        "Records mentioning the person: their personal text fields",
    )


def propose_rules(models: list[ModelInfo], existing: set[tuple[str, str, str]] = frozenset()) -> tuple[list[Proposal], list[str]]:
    """Every rule the models need that ``existing`` (keys of the rules there are, active or
    not) lacks, in erasure order; and, for each link left without a rule, why."""
    proposals, skipped = [], []
    for model in sorted(models, key=lambda m: m.name):
        if model.name in SKIPPED_MODELS:
            continue
        for link in partner_links(model):
            proposal = propose_rule(model, link)
            if isinstance(proposal, str):
                skipped.append("%s.%s: %s" % (model.name, link.name, proposal))
            elif proposal.key not in existing:
                proposals.append(proposal)
    proposals.sort(key=lambda p: (p.sequence, p.model, p.partner_field))
    return proposals, skipped
