"""User names and passwords: one user whatever the case or Unicode form of its name, the whole
name checked (no trailing newline), NFKC passwords, trivial passwords refused, old databases kept."""

from __future__ import annotations

import hashlib
import io
import sys
import unicodedata

import pytest
from streamlit.testing.v1 import AppTest

from review import auth, cli, store
from review.errors import AuthError, ReviewError
from tests.helpers import PASSWORD, ROOT

NFC_CAFE = unicodedata.normalize("NFC", "café au lait")  # é one code point
NFD_CAFE = unicodedata.normalize("NFD", "café au lait")  # e + combining acute


def _names(db) -> list[str]:
    return [r[0] for r in db.execute("SELECT name FROM users ORDER BY name")]


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("twin", ["Ada", "ADA", "aDa", "\uff41\uff44\uff41", "\uff21da"])  # last two: full-width
def test_a_name_differing_only_in_case_or_width_is_the_same_user(db, admin, twin):
    auth.create_user(db, "ada", "annotator", PASSWORD, admin)
    with pytest.raises(ReviewError, match="A user named 'ada' exists already"):
        auth.create_user(db, twin, "lead", PASSWORD, admin)
    assert _names(db) == ["ada", "alice"]
    with pytest.raises(ReviewError, match="exists already"):
        auth.create_user(db, "ALICE", "admin", PASSWORD, admin)


def test_a_name_is_stored_nfkc(db, admin):
    u = auth.create_user(db, "\uff22\uff4f\uff42", "annotator", PASSWORD, admin)  # full-width Bob
    assert u == auth.User("Bob", "annotator") and "Bob" in _names(db)
    assert auth.sign_in(db, "bob", PASSWORD) == u


def test_composed_and_decomposed_accents_are_one_name(db, admin):
    nfc, nfd = unicodedata.normalize("NFC", "josé"), unicodedata.normalize("NFD", "josé")
    assert nfc != nfd and auth.name_key(nfc) == auth.name_key(nfd) == auth.name_key("JOSÉ")
    for name in (nfc, nfd):  # the allowed names are ASCII: both forms refused, with the same (NFKC) name
        with pytest.raises(ReviewError, match=f"User name '{nfc}' is not allowed"):
            auth.create_user(db, name, "annotator", PASSWORD, admin)
    assert _names(db) == ["alice"]


@pytest.mark.parametrize(
    "name",
    ["ada\n", "ada\r\n", "ada\r", "\nada", " ada", "ada ", "ada\x00", "a" * 65, "", "ada\u2028", "ad a", "ada\u00a0"],
)
def test_the_whole_name_must_match_the_pattern(db, admin, name):
    with pytest.raises(ReviewError, match="is not allowed"):
        auth.create_user(db, name, "annotator", PASSWORD, admin)
    assert _names(db) == ["alice"]


def test_the_cli_refuses_a_name_with_a_trailing_newline(tmp_path, capsys, monkeypatch):
    db_file = tmp_path / "cli.db"
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code = cli.main(["users", "add", "ada\n", "--role", "admin", "--password-stdin", "--db", str(db_file)])
    out, err = capsys.readouterr()
    assert code == 2 and "is not allowed" in err and not out
    monkeypatch.setattr(sys, "stdin", io.StringIO(" " * 8 + "\n"))
    code = cli.main(["users", "add", "ada", "--role", "admin", "--password-stdin", "--db", str(db_file)])
    out, err = capsys.readouterr()
    assert code == 2 and "only spaces" in err
    db = store.connect(db_file)
    try:
        assert _names(db) == []
    finally:
        db.conn.close()


def test_sign_in_matches_the_name_whatever_its_case(db, admin):
    ada = auth.create_user(db, "ada", "annotator", PASSWORD, admin)
    for typed in ("ada", "Ada", "ADA", "\uff41\uff44\uff41"):
        assert auth.sign_in(db, typed, PASSWORD) == ada  # the stored name, whatever was typed
    with pytest.raises(AuthError, match="Wrong user name or password"):
        auth.sign_in(db, "ADA", "wrong password!")
    assert store.scalar(db, "SELECT failed_logins FROM users WHERE name='ada'") == 1  # counted on the account
    assert store.scalar(db, "SELECT actor FROM audit_log WHERE action='sign_in_failed'") == "ada"
    with pytest.raises(AuthError, match="Wrong user name or password"):
        auth.sign_in(db, "ada\n", PASSWORD)


def test_old_case_twins_keep_signing_in_by_their_exact_name(db, admin):
    """A database from before this rule may hold 'ada' and 'Ada': neither is broken, no third is added."""
    auth.create_user(db, "ada", "annotator", PASSWORD, admin)
    with store.transaction(db):  # as an older version could write it
        db.execute(
            "INSERT INTO users(name, role, password_hash, created_at, active) VALUES (?,?,?,?,1)",
            ["Ada", "lead", auth.hash_password("other password 2"), store.now_iso()],
        )
    assert auth.sign_in(db, "ada", PASSWORD) == auth.User("ada", "annotator")
    assert auth.sign_in(db, "Ada", "other password 2") == auth.User("Ada", "lead")
    with pytest.raises(AuthError, match="Wrong user name or password"):
        auth.sign_in(db, "Ada", PASSWORD)  # exact name wins: ada's password is not Ada's
    for typed, pw in (("ADA", PASSWORD), ("ADA", "other password 2"), ("aDA", PASSWORD)):
        with pytest.raises(AuthError, match="Wrong user name or password"):
            auth.sign_in(db, typed, pw)  # matches both only in case: neither
    assert (
        store.scalar(
            db, "SELECT COUNT(*) FROM audit_log WHERE action='sign_in_failed' AND payload LIKE '%ambiguous name%'"
        )
        == 3
    )
    with pytest.raises(ReviewError, match="exists already"):
        auth.create_user(db, "ADA", "annotator", PASSWORD, admin)
    assert _names(db) == ["Ada", "ada", "alice"]


# ----------------------------------------------------------------------------- passwords


@pytest.mark.parametrize(
    "password,why",
    [
        (" " * 8, "only spaces"),
        (" " * 40, "only spaces"),
        ("\t\n \u3000\u00a0  \r ", "only spaces"),
        ("   short1   ", r"too short: use at least 8 characters \(spaces at the start or end do not count\)"),
        ("1234567", r"too short: use at least 8 characters\.$"),
        ("", "too short"),
        ("adalovelace", "is the user name"),
        ("AdaLovelace", "is the user name"),
        ("  ADALOVELACE ", "is the user name"),
        ("\uff21\uff44\uff41lovelace", "is the user name"),  # full-width, NFKC the name
        ("aaaaaaaa", "one character repeated"),
        ("********************", "one character repeated"),
        ("\uff41" * 10, "one character repeated"),  # full-width a, NFKC "aaaaaaaaaa"
    ],
)
def test_trivial_passwords_are_refused_with_a_clear_message(db, admin, password, why):
    with pytest.raises(ReviewError, match=why):
        auth.create_user(db, "adalovelace", "annotator", password, admin)
    assert _names(db) == ["alice"]
    assert auth.password_refusal(password, "adalovelace") is not None


@pytest.mark.parametrize("password", ["  padded pass  ", "adalovelace!", "aaaaaaab", "correct horse", "ab" * 4])
def test_ordinary_passwords_are_accepted(db, admin, password):
    assert auth.password_refusal(password, "adalovelace") is None
    auth.create_user(db, "adalovelace", "annotator", password, admin)
    assert auth.sign_in(db, "adalovelace", password).name == "adalovelace"


@pytest.mark.parametrize("made,typed", [(NFC_CAFE, NFD_CAFE), (NFD_CAFE, NFC_CAFE), ("ﬁnal pass", "final pass")])
def test_a_password_is_nfkc_before_hashing_and_checking(db, admin, made, typed):
    assert made != typed
    auth.create_user(db, "ada", "annotator", made, admin)
    assert auth.sign_in(db, "ada", typed) == auth.User("ada", "annotator")
    assert auth.sign_in(db, "ada", made) == auth.User("ada", "annotator")
    stored = store.scalar(db, "SELECT password_hash FROM users WHERE name='ada'")
    assert auth.check_password(unicodedata.normalize("NFKC", made), stored)


def test_an_old_hash_of_a_decomposed_password_still_matches_it():
    """A hash written before normalisation, of the password exactly as typed then."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(NFD_CAFE.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32)
    old = f"scrypt${2**14}$8$1${salt.hex()}${digest.hex()}"
    assert auth.check_password(NFD_CAFE, old)
    assert not auth.check_password("café au lai", old)


@pytest.mark.parametrize("stored", ["", "scrypt$x$8$1$00$00", "scrypt$16384$8$1$zz$00", "bcrypt$1$2$3$4$5", "a$b"])
def test_a_malformed_stored_hash_matches_nothing(stored):
    assert not auth.check_password(PASSWORD, stored)


def test_first_admin_form_refuses_a_trivial_password(tmp_path, monkeypatch):
    path = tmp_path / "review.db"
    monkeypatch.setenv("REVIEW_DB", str(path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.text_input(key="first_name").input("root")
    at.text_input(key="first_pw").input(" " * 8)
    at.text_input(key="first_pw2").input(" " * 8)
    at = at.button[0].click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The password is only spaces: use letters, digits or signs."]
    at.text_input(key="first_pw").input("Root")
    at.text_input(key="first_pw2").input("Root")
    at = at.button[0].click().run()
    assert [e.value for e in at.error][0].startswith("The password is too short")
    db = store.connect(path)
    try:
        assert not auth.has_users(db)
    finally:
        db.conn.close()
