"""The GDPR rule proposal's planning (zero_sudo_gdpr/models/rule_planning.py), on plain models:
which links to a contact it finds, what it proposes there, and in which order."""

from __future__ import annotations

from conftest import addon_module

planning = addon_module("zero_sudo_gdpr", "models/rule_planning.py")
F, M = planning.FieldInfo, planning.ModelInfo


def partner():
    return M(
        "res.partner",
        "Contact",
        (
            F("name", "char"),
            F("email", "char"),
            F("phone", "char"),
            F("barcode", "char", unique=True),
            F("complete_name", "char", writable=False),
            F("type", "selection"),
            F("parent_id", "many2one", "Related Company", comodel="res.partner", ondelete="set null"),
            F("commercial_partner_id", "many2one", comodel="res.partner", writable=False),
        ),
    )


def message():
    return M(
        "mail.message",
        "Message",
        (
            F("body", "html"),
            F("subject", "char"),
            F("email_from", "char"),
            F("message_id", "char"),
            F("model", "char"),
            F("res_id", "many2one_reference", model_field="model"),
            F("author_id", "many2one", "Author", comodel="res.partner", ondelete="set null"),
        ),
    )


def lead():
    """A model no default knows: an optional link to the person and text of all sorts."""
    return M(
        "crm.lead",
        "Lead",
        (
            F("partner_id", "many2one", "Customer", comodel="res.partner", ondelete="set null"),
            F("contact_name", "char"),
            F("email_from", "char"),
            F("description", "html"),
            F("priority", "char"),
            F("email_normalized", "char", writable=False),
            F("uuid", "char"),
            F("ref_code", "char", unique=True),
        ),
    )


def membership():
    return M(
        "club.member",
        "Member",
        (F("partner_id", "many2one", "Member", comodel="res.partner", required=True), F("nickname", "char")),
    )


def proposals_by_link(models, existing=frozenset()):
    proposals, skipped = planning.propose_rules(models, set(existing))
    return {(p.model, p.partner_field): p for p in proposals}, skipped


def test_the_contact_itself_is_anonymized_last_and_its_addresses_too():
    proposals, skipped = proposals_by_link([partner(), message(), membership()])
    contact = proposals[("res.partner", "id")]
    assert (contact.action, contact.field_names) == ("anonymize", ("name", "email", "phone"))
    assert contact.sequence == max(p.sequence for p in proposals.values()), "the contact comes last"
    assert planning.propose_rules([partner(), message()])[0][-1].key == ("res.partner", "id", "anonymize")
    addresses = proposals[("res.partner", "parent_id")]
    assert addresses.extra_domain == [["type", "!=", "contact"]], "the person's addresses, not the people of a company"
    assert any("commercial_partner_id" in reason for reason in skipped), "a computed link is derived, not a rule of its own"


def test_mail_defaults_anonymize_what_the_person_wrote_and_drop_their_chatter():
    proposals, _ = proposals_by_link(
        [message(), M("mail.followers", "Followers", (F("partner_id", "many2one", comodel="res.partner", ondelete="cascade"),))]
    )
    authored = proposals[("mail.message", "author_id")]
    assert authored.action == "anonymize"
    assert set(authored.field_names) == {"subject", "body", "email_from"}, "only fields the model has"
    chatter = proposals[("mail.message", "res_id")]
    assert (chatter.action, chatter.extra_domain) == ("delete", [["model", "=", "res.partner"]])
    assert proposals[("mail.followers", "partner_id")].action == "delete"


def test_unknown_models_by_their_link_required_means_delete_optional_means_anonymize_personal_text():
    proposals, _ = proposals_by_link([lead(), membership()])
    assert proposals[("club.member", "partner_id")].action == "delete"
    leads = proposals[("crm.lead", "partner_id")]
    assert leads.action == "anonymize"
    assert leads.field_names == ("contact_name", "email_from", "description"), (
        "not computed, unique, technical or impersonal fields"
    )


def test_user_accounts_companies_and_the_erasers_own_records_get_no_rule():
    models = [
        M("res.users", "User", (F("partner_id", "many2one", comodel="res.partner", required=True),)),
        M("res.company", "Company", (F("partner_id", "many2one", comodel="res.partner", required=True),)),
        M("zero_sudo.gdpr.request", "Erasure", (F("partner_id", "many2one", comodel="res.partner", required=True),)),
        M("note.pad", "Pad", (F("partner_id", "many2one", comodel="res.partner"), F("color", "char"))),
    ]
    proposals, skipped = proposals_by_link(models)
    assert proposals == {}
    assert len(skipped) == 3, "each link without a rule says why (the eraser's own records apart)"
    assert any("no personal text" in reason for reason in skipped)


def test_proposing_again_proposes_only_what_no_rule_covers():
    first, _ = planning.propose_rules([partner(), message()])
    again, _ = planning.propose_rules([partner(), message()], {p.key for p in first})
    assert again == []
    one_less, _ = planning.propose_rules([partner(), message()], {p.key for p in first[1:]})
    assert one_less == [first[0]]
