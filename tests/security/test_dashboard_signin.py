"""Attacks on dashboard sign-in at the credential layer: guessing, borrowing, forging a users-file line.

Each test states the attack (the exact payload) and the refusal expected.
"""

from __future__ import annotations

import os
import stat
import statistics
import time

import pytest

from agentaudit.dashboard import AuthError, SignInThrottle, add_user, read_users, set_password, sign_in
from agentaudit.exceptions import ConfigError
from tests.dashboard_users import PASSWORDS, users_file


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    return read_users(users_file(tmp_path_factory.mktemp("users")))


@pytest.mark.parametrize("password", [
    "",                                   # no password at all (the old default signed in as oncall with none)
    "alice-correct-hors",                 # one character short
    "ALICE-CORRECT-HORSE",                # case changed
    "alice-correct-horse ",               # trailing space
    PASSWORDS["bob"],                     # another user's valid password
    "' OR '1'='1",                        # injection-shaped
])
def test_wrong_password_is_refused(credentials, password):
    """Attack: sign in as alice with a password that is not hers. Expected: AuthError, the same message each time."""
    with pytest.raises(AuthError, match=r"^wrong user name or password$"):
        sign_in(credentials, "alice", password)


def test_the_stored_hash_is_not_a_password(credentials):
    """Attack: pass-the-hash: present alice's argon2 hash string (read from a leaked users file) as her password."""
    with pytest.raises(AuthError):
        sign_in(credentials, "alice", credentials["alice"].hash)


def test_a_user_cannot_sign_in_as_another(credentials):
    """Attack: bob, who knows only his own password, signs in under alice's name (and variants of it).
    Expected: refused; his password signs in as bob and only as bob."""
    for name in ("alice", "Alice", "alice ", " alice", "alice\x00", "alice:team-payments"):
        with pytest.raises(AuthError):
            sign_in(credentials, name, PASSWORDS["bob"])
    assert sign_in(credentials, "bob", PASSWORDS["bob"]).name == "bob"


def test_oidc_only_users_have_no_password(tmp_path):
    """Attack: sign in with a password as an OIDC-only user, with '!' (the marker itself) or anything else."""
    path = tmp_path / "users"
    add_user(path, "carol@example.com", oidc=True)
    users = read_users(path)
    for password in ("!", "", "carol@example.com", "x" * 20):
        with pytest.raises(AuthError):
            sign_in(users, "carol@example.com", password)


@pytest.mark.parametrize("name", [
    "mallory\nroot:sre:operator:!",        # a newline would start a second line in the users file
    "mallory:sre:operator:!",              # a colon would shift the fields: mallory becomes an OIDC operator
    "../../etc/passwd", " alice", "", "a" * 129,
])
def test_a_name_cannot_forge_a_users_file_line(tmp_path, name):
    """Attack: an operator is tricked into adding a crafted name. Expected: ConfigError, file unchanged."""
    path = tmp_path / "users"
    add_user(path, "alice", password=PASSWORDS["alice"])
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="not allowed"):
        add_user(path, name, team="sre")
    assert path.read_bytes() == before and list(read_users(path)) == ["alice"]


def test_team_cannot_forge_a_users_file_line(tmp_path):
    """Attack: team ``x:operator:!\\nroot`` to smuggle fields or a line. Expected: ConfigError."""
    with pytest.raises(ConfigError, match="not allowed"):
        add_user(tmp_path / "users", "mallory", team="x:operator:!\nroot")


def test_guessing_is_slowed_by_the_hash_cost(credentials):
    """Attack: online guessing. Expected: each guess costs an argon2id check (>= 50 ms here, 64 MiB), for
    unknown names as much as for known ones, so neither a guess nor a name probe is cheap."""
    assert credentials["alice"].hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    guesses: dict[str, list[float]] = {"alice": [], "nobody-by-that-name": []}
    for guess in range(5):  # the two names alternate, so a load spike on a shared machine hits both alike
        for name, times in guesses.items():
            began = time.perf_counter()
            with pytest.raises(AuthError):
                sign_in(credentials, name, f"guess-{guess}")
            times.append(time.perf_counter() - began)
    timings = {name: statistics.median(times) for name, times in guesses.items()}
    print(f"seconds per guess (median of 5): {timings}")
    assert min(timings.values()) >= 0.05
    assert 0.5 < timings["alice"] / timings["nobody-by-that-name"] < 2.0


def test_guessing_one_name_is_locked_out(credentials):
    """Attack: 5 wrong guesses for alice, then the right password. Expected: the right password is refused too
    while the lock lasts (the guesser cannot tell a hit), and sign-in works again once it expires."""
    now = [100.0]
    throttle = SignInThrottle(clock=lambda: now[0])
    for guess in range(5):
        with pytest.raises(AuthError, match="wrong user name or password"):
            sign_in(credentials, "alice", f"guess-{guess}", throttle=throttle)
    with pytest.raises(AuthError, match="too many failed sign-ins"):
        sign_in(credentials, "alice", PASSWORDS["alice"], throttle=throttle)
    assert sign_in(credentials, "bob", PASSWORDS["bob"], throttle=throttle).name == "bob"  # others unaffected
    now[0] += 2
    assert sign_in(credentials, "alice", PASSWORDS["alice"], throttle=throttle).name == "alice"


def test_users_file_is_created_0600_whatever_the_umask(tmp_path):
    """Attack: read hashes out of a world-readable users file. Expected: created, reset and rewritten at 0600
    even under umask 000."""
    path = tmp_path / "users"
    old = os.umask(0)
    try:
        add_user(path, "alice")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        set_password(path, "alice")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["users"]  # no temporary file left behind
    finally:
        os.umask(old)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o666])
def test_a_users_file_others_can_read_or_write_is_refused(tmp_path, mode):
    """Attack: someone made the file group/world readable or writable (to read hashes or add themselves).
    Expected: the dashboard refuses to load it and says how to fix it."""
    path = tmp_path / "users"
    add_user(path, "alice")
    path.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_users(path)


_FLOOD = """
import resource, sys, threading
from agentaudit.dashboard import AuthError, read_users, sign_in
users = read_users(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def guess(n):
    try:
        sign_in(users, "alice", f"flood-{n}")
    except AuthError:
        pass
threads = [threading.Thread(target=guess, args=(n,)) for n in range(24)]
[t.start() for t in threads]
[t.join() for t in threads]
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""


def test_a_flood_of_sign_ins_does_not_exhaust_memory(tmp_path):
    """Attack: 24 sessions submit a wrong password at the same moment (each argon2id check takes 64 MiB, so
    24 at once would take 1.5 GiB). Expected: at most 4 checks run at once; the process grows by < 600 MiB."""
    import subprocess
    import sys

    path = users_file(tmp_path)
    run = subprocess.run([sys.executable, "-c", _FLOOD, str(path)], capture_output=True, text=True, timeout=300,
                         check=True)
    grown_mib = int(run.stdout.strip())
    print(f"peak RSS growth during 24 concurrent sign-ins: {grown_mib} MiB")
    assert grown_mib < 600


class TestSessionCookie:
    """Attacks on the ``agentaudit_session`` cookie that keeps a password sign-in across page loads."""

    @pytest.fixture
    def clock(self):
        return [1_000_000.0]

    @pytest.fixture
    def tokens(self, clock):
        from agentaudit.dashboard import SessionTokens

        return SessionTokens(ttl=3600, clock=lambda: clock[0])

    def test_a_token_signs_in_only_its_own_user(self, tokens, credentials):
        token = tokens.issue(credentials["bob"])
        assert tokens.check(credentials, token).name == "bob"

    def test_a_forged_or_edited_token_is_refused(self, tokens, credentials):
        """Attack: bob edits his token to name alice (payload swapped, MAC kept), pushes its expiry out, or
        writes one from scratch. Expected: each refused."""
        import base64

        token = tokens.issue(credentials["bob"])
        name, expiry, mac = token.split(".")
        alice = base64.urlsafe_b64encode(b"alice").decode().rstrip("=")
        for forged in (f"{alice}.{expiry}.{mac}", f"{name}.{int(expiry) + 10**6}.{mac}", f"{alice}.9999999999.{'0' * 64}",
                       f"{alice}.{expiry}", "alice", "", f"{token}.x", f"{name}.{expiry}.{mac.upper()}"):
            assert tokens.check(credentials, forged) is None, forged

    def test_a_token_from_another_process_is_refused(self, tokens, credentials):
        """Attack: a token issued by another dashboard process (or before a restart). Expected: refused."""
        from agentaudit.dashboard import SessionTokens

        assert tokens.check(credentials, SessionTokens().issue(credentials["alice"])) is None

    def test_an_expired_or_revoked_token_is_refused(self, tokens, credentials, clock):
        """Attack: replay a stolen cookie after its 12 h (here 1 h) or after its owner signed out."""
        token = tokens.issue(credentials["alice"])
        clock[0] += 3601
        assert tokens.check(credentials, token) is None
        fresh = tokens.issue(credentials["alice"])
        tokens.revoke(fresh)
        assert tokens.check(credentials, fresh) is None

    def test_a_password_reset_voids_every_token(self, tokens, tmp_path):
        """Attack: keep using a stolen cookie after the operator reset the victim's password. Expected: refused."""
        path = users_file(tmp_path)
        token = tokens.issue(read_users(path)["alice"])
        assert tokens.check(read_users(path), token).name == "alice"
        set_password(path, "alice")
        assert tokens.check(read_users(path), token) is None
