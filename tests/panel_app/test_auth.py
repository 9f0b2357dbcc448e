"""Login, roles and the refusal rules, on real hashes, a real server and a real kernel."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pytest
from tornado.web import decode_signed_value

from engine.access import (
    DEV_COOKIE_SECRET,
    AccessDirectory,
    authorize_command,
    hash_password,
    hash_token,
    load_users_file,
    make_authorizer,
    new_api_token,
    resolve_cookie_secret,
    verify_password,
)
from engine.config import COOKIE_SECRET_ENV, AccessConfig, UserConfig, build
from engine.kernel import Kernel
from panel_app.server import DashboardServer
from streams.errors import ConfigError
from testkit import free_port
from testkit.access_server import (
    PASSWORDS,
    SECRET,
    SESSIONS_SEEN,
    Client,
    client_fixture,
    document_models,
    kernel_fixture,
    make_access,
    pull_document,
    server_fixture,
)


# -- hashing --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["scrypt", "pbkdf2_sha256"])
def test_a_hashed_password_verifies_only_with_the_right_password(method: str) -> None:
    stored = hash_password("s3cret!", method=method)

    assert "s3cret!" not in stored and stored.startswith(method)
    assert verify_password("s3cret!", stored)
    assert not verify_password("s3cret", stored)
    assert not verify_password("", stored)


def test_the_same_password_gets_a_different_salt_every_time() -> None:
    assert hash_password("pw") != hash_password("pw")


@pytest.mark.parametrize(
    "stored", ["", "plaintext", "scrypt$1$8$1$AA==$AA==", "scrypt$x$y$z$a$b", "md5$abc"]
)
def test_malformed_hashes_never_verify(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_a_plaintext_password_in_the_config_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"users\.alice"):
        build(AccessConfig, {"users": {"alice": {"role": "operator", "password_hash": "hunter2"}}})


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ConfigError, match="role"):
        build(
            AccessConfig, {"users": {"a": {"role": "admin", "password_hash": hash_password("x")}}}
        )


# -- users file --------------------------------------------------------------------------------
def test_users_and_tokens_load_from_a_yaml_file_with_hashes_only(tmp_path: Path) -> None:
    token, token_hash = new_api_token()
    users_file = tmp_path / "users.yaml"
    users_file.write_text(
        "users:\n"
        f"  carol: {{role: operator, password_hash: '{hash_password('carol-pw')}'}}\n"
        "api_tokens:\n"
        f"  '{token_hash}': {{user: jupyter, role: viewer}}\n"
    )
    access = AccessConfig(dev_mode=False, users_file=str(users_file), cookie_secret=SECRET)

    directory = AccessDirectory.from_config(access)

    assert "carol-pw" not in users_file.read_text() and token not in users_file.read_text()
    identity = directory.verify("carol", "carol-pw")
    assert identity is not None and identity.role == "operator"
    assert directory.verify("carol", "wrong") is None
    token_identity = directory.identify_token(token)
    assert token_identity is not None and token_identity.user == "jupyter"
    assert directory.identify_token("not-a-token") is None


def test_a_json_users_file_works_too(tmp_path: Path) -> None:
    users_file = tmp_path / "users.json"
    users_file.write_text(
        json.dumps({"users": {"dan": {"role": "viewer", "password_hash": hash_password("d")}}})
    )

    assert load_users_file(users_file).users["dan"].role == "viewer"


def test_a_broken_users_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    users_file = tmp_path / "users.yaml"
    users_file.write_text("users:\n  eve: {role: operator, password_hash: plain}\n")

    with pytest.raises(ConfigError, match=r"users\.yaml.*users\.eve"):
        load_users_file(users_file)


# -- secrets and dev mode -------------------------------------------------------------------------
def test_a_non_dev_config_without_cookie_secret_refuses_to_start() -> None:
    access = make_access(cookie_secret="")

    with pytest.raises(ConfigError, match=COOKIE_SECRET_ENV):
        resolve_cookie_secret(access, env={})


def test_the_server_refuses_to_start_without_cookie_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(COOKIE_SECRET_ENV, raising=False)

    with pytest.raises(ConfigError, match="refusing to start"):
        DashboardServer(object(), port=1, access=make_access(cookie_secret=""))


def test_a_non_dev_config_without_users_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="no users"):
        AccessDirectory.from_config(AccessConfig(dev_mode=False, cookie_secret=SECRET))


def test_the_environment_secret_wins_and_short_secrets_are_refused() -> None:
    access = make_access()

    assert resolve_cookie_secret(access, env={COOKIE_SECRET_ENV: "e" * 40}) == "e" * 40
    with pytest.raises(ConfigError, match="at least"):
        resolve_cookie_secret(access, env={COOKIE_SECRET_ENV: "short"})


def test_dev_mode_has_insecure_defaults_and_is_loopback_only() -> None:
    dev = AccessConfig()  # the embedded default

    directory = AccessDirectory.from_config(dev)

    assert dev.dev_mode is True
    assert resolve_cookie_secret(dev, env={}) == DEV_COOKIE_SECRET
    assert directory.verify("operator", "operator") is not None
    assert directory.verify("viewer", "viewer").role == "viewer"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="loopback"):
        DashboardServer(object(), port=1, address="0.0.0.0", access=dev)


def test_a_viewer_named_like_a_trusted_runner_actor_is_refused() -> None:
    class Runner:
        operators = ("engine", "cli")

    class Config:
        runner = Runner()

    access = make_access(users={"cli": UserConfig("viewer", hash_password("x"))})

    with pytest.raises(ConfigError, match=r"system actor|runner\.operators"):
        DashboardServer(Config(), port=1, access=access)


# -- authorization ------------------------------------------------------------------------------
def test_only_operators_may_issue_commands() -> None:
    assert authorize_command("alice", "operator", "pause")
    assert not authorize_command("bob", "viewer", "pause")
    assert not authorize_command("mallory", None, "pause")
    assert not authorize_command("", "operator", "pause")


def test_the_engine_authorizer_knows_users_tokens_and_system_actors() -> None:
    access = make_access()

    authorize = make_authorizer(access)

    assert authorize("alice", "flatten")
    assert authorize("ops-bot", "pause")  # operator API token
    assert authorize("engine", "stop")
    assert not authorize("bob", "pause")
    assert not authorize("notebook", "pause")  # viewer API token
    assert not authorize("nobody", "pause")


def test_api_token_keys_must_be_hashes() -> None:
    with pytest.raises(ConfigError, match="not a token hash"):
        AccessDirectory.from_config(
            make_access(api_tokens={"plain-token": {"user": "x", "role": "viewer"}})  # type: ignore[dict-item]
        )
    assert hash_token("abc").startswith("sha256:")


# -- the live server -------------------------------------------------------------------------------
kernel = kernel_fixture("auth")
server = server_fixture()
client = client_fixture()


def test_the_dashboard_redirects_to_login_without_a_session(client: Client) -> None:
    reply = client.request("GET", "/")

    assert reply.status == 302
    assert reply.headers["Location"].lstrip(".").startswith("/login")


def test_the_login_page_is_served(client: Client) -> None:
    reply = client.request("GET", "/login")

    assert reply.status == 200
    assert b'name="password"' in reply.body and b"INSECURE" not in reply.body


def test_a_wrong_password_is_refused_without_a_session(client: Client) -> None:
    reply = client.login("alice", "not-her-password")

    assert reply.status == 401
    assert b"Invalid username or password" in reply.body
    assert "user" not in client.cookies
    assert client.request("GET", "/").status == 302


def test_an_unknown_user_is_refused(client: Client) -> None:
    assert client.login("mallory", "whatever").status == 401


@pytest.mark.parametrize(("user", "role"), [("alice", "operator"), ("bob", "viewer")])
def test_the_right_password_opens_a_session_carrying_the_role(
    client: Client, user: str, role: str
) -> None:
    reply = client.login(user, PASSWORDS[user])

    assert reply.status == 302 and reply.headers["Location"] == "/"
    signed_user = decode_signed_value(SECRET, "user", client.cookies["user"].strip('"'))
    assert signed_user == user.encode()
    raw_token = decode_signed_value(SECRET, "id_token", client.cookies["id_token"].strip('"'))
    assert raw_token is not None
    token = json.loads(base64.urlsafe_b64decode(raw_token + b"=" * (-len(raw_token) % 4)))
    assert token == {"user": user, "username": user, "role": role}
    SESSIONS_SEEN.clear()
    page = client.request("GET", "/")
    assert page.status == 200
    assert [(user, role)] == SESSIONS_SEEN  # pn.state.user and current_role() in the session


def test_session_cookies_are_httponly_and_samesite(client: Client) -> None:
    reply = client.login("bob", PASSWORDS["bob"])

    headers = [h for h in reply.headers.get_all("Set-Cookie") or [] if h.startswith("user=")]
    assert headers and "HttpOnly" in headers[0] and "SameSite=Lax" in headers[0]


def test_an_open_redirect_after_login_is_not_followed(client: Client) -> None:
    import urllib.parse

    form = urllib.parse.urlencode(
        {"username": "bob", "password": PASSWORDS["bob"], "next": "//evil.example/x"}
    )
    reply = client.request(
        "POST", "/login", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert reply.status == 302 and reply.headers["Location"] == "/"


def test_logout_ends_the_session(client: Client) -> None:
    client.login("bob", PASSWORDS["bob"])

    reply = client.request("GET", "/logout")

    assert reply.status == 302
    assert reply.cookies().get("user", "") in ("", '""')


def test_a_forged_command_from_a_viewer_session_is_refused_and_audited(
    client: Client, kernel: Kernel
) -> None:
    client.login("bob", PASSWORDS["bob"])
    since = kernel.log.last_seq

    reply = client.request(
        "POST", "/api/command", b'{"command": "start"}', {"Content-Type": "application/json"}
    )
    kernel.command("start", "bob")  # even straight to the engine, as a forged message would
    kernel.bus.join(10)

    assert reply.status == 403
    refused = kernel.log.read(since_seq=since, types=["command_refused"])
    assert [e.actor for e in refused] == ["bob", "bob"]  # type: ignore[attr-defined]
    assert kernel.runner.status == "stopped"


def test_an_operator_session_may_command(client: Client, kernel: Kernel) -> None:
    client.login("alice", PASSWORDS["alice"])

    reply = client.request(
        "POST", "/api/command", b'{"command": "start"}', {"Content-Type": "application/json"}
    )
    kernel.bus.join(10)
    client.request(
        "POST", "/api/command", b'{"command": "stop"}', {"Content-Type": "application/json"}
    )
    kernel.bus.join(10)

    assert reply.status == 202
    issued = kernel.log.read(types=["runner_status_changed"])
    assert any("alice" in e.reason for e in issued)  # type: ignore[attr-defined]


def test_seamless_serve_builds_the_dashboard_only_for_a_signed_in_user(kernel: Kernel) -> None:
    server = DashboardServer(
        kernel.config, port=free_port(), kernel=kernel, access=make_access()
    ).start_background()
    try:
        anonymous = Client(server.port).request("GET", "/")
        bob = Client(server.port)
        bob.login("bob", PASSWORDS["bob"])
        doc = pull_document(bob, "/")
    finally:
        server.stop(engine=False)

    models = document_models(doc)
    shown = [html.unescape(str(m.get("attributes", {}).get("text", ""))) for m in models]
    assert anonymous.status == 302
    assert any('data-testid="user" data-role="viewer">bob (viewer)' in text for text in shown)
