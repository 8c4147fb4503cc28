"""The engine's context checks on real-code shapes: credentials versus look-alikes."""

from __future__ import annotations

from base64 import b64encode

import pytest
from secretsd.scanners.checksums import base62, validate
from secretsd.scanners.engine import Engine
from secretsd.scanners.model import Fragment, redact
from synth import aws_key_id, bad_checksum, github_token, password, rand

PW = password()
TOKEN = github_token()


def _rules(engine: Engine, text: str, path: str = "app.py") -> list[str]:
    """Rules reported at the default confidence floor (medium)."""
    found = engine.scan(Fragment(path, text.encode()))
    return [f.rule for f in found if f.confidence != "low"]


POSITIVES = [
    ("settings.py", f'DATABASES = {{"default": {{"PASSWORD": "{PW}"}}}}'),
    ("app.js", f"const client = new Client({{ user: 'svc', password: '{PW}' }});"),
    ("Main.java", f'private static final String DB_PASSWORD = "{PW}";'),
    ("main.go", f'cfg := Config{{User: "svc", Password: "{PW}"}}'),
    ("config.php", f"'password' => '{PW}',"),
    ("app.rb", f"  password: '{PW}',"),
    ("Program.cs", f'var conn = "Server=db;User Id=sa;Password={PW};";'),
    ("main.tf", f'  password = "{PW}"'),
    (".env", f"POSTGRES_PASSWORD={PW}"),
    ("docker-compose.yml", f"    environment:\n      - MYSQL_ROOT_PASSWORD={PW}\n"),
    ("values.yaml", f"db:\n  password: {PW}\n"),
    ("app.ini", f"[db]\npassword = {PW}\n"),
    ("settings.xml", f"<password>{PW}</password>"),
    ("deploy.sh", f"export API_TOKEN={rand(32, seed=9)}"),
    ("app.py", f"conn = 'postgresql://app:{PW}@db.internal:5432/app'"),
    ("app.py", f'token = "{TOKEN}"'),
    ("app.py", f'token = "{github_token(zero_checksum=True)}"'),
    ("app.py", f"key = '{aws_key_id()}'"),
    ("test_login.py", 'client.login(username="alice", password="hunter22")'),
    ("init.sql", f"ALTER USER app WITH PASSWORD '{PW}';"),
    (
        "k8s/db.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n"
        f"  user: {b64encode(b'app').decode()}\n  password: {b64encode(PW.encode()).decode()}\n",
    ),
    ("tests/fixtures/logins.csv", f"user,password\nana,{PW}\n"),
    (
        "k8s/all.yaml",
        "kind: ConfigMap\ndata:\n  a: b\n---\nkind: Secret\ndata:\n"
        f"  API_TOKEN: {b64encode(rand(30, seed=8).encode()).decode()}\n",
    ),
]

NEGATIVES = [
    ("app.py", 'password = os.environ["DB_PASSWORD"]'),
    ("app.py", "password = getpass.getpass()"),
    ("app.py", 'password = settings.get("password")'),
    ("app.js", "const password = process.env.DB_PASSWORD;"),
    ("app.py", 'password = "secretsd://apps/web/db#password"'),
    ("values.yaml", "password: secretsd://apps/web/db#password\n"),
    ("vars.yml", "db_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6238386133346332\n"),
    ("values.yaml", "password: {{ .Values.db.password }}\n"),
    ("app.py", 'password = "<password>"'),
    ("app.py", 'api_key = "YOUR_API_KEY"'),
    ("app.py", 'sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"'),
    ("app.py", 'request_id = "123e4567-e89b-12d3-a456-426614174000"'),
    ("app.py", 'api_key = "123e4567-e89b-12d3-a456-426614174000"'),
    ("app.py", 'key = "AKIAIOSFODNN7EXAMPLE"'),
    ("app.py", f'token = "{bad_checksum(TOKEN)}"'),
    ("app.py", 'password_field = "password"'),
    ("forms.py", 'widget = forms.PasswordInput(attrs={"placeholder": "Password"})'),
    ("app.py", 'raise ValueError("Password must be at least 8 characters")'),
    ("app.py", "def check_password(self, password: str) -> bool:"),
    ("app.py", 'if token_type == "bearer":'),
    ("app.py", 'TOKEN_URL = "https://oauth2.example.com/token"'),
    ("app.py", "password = None"),
    ("app.py", 'password = ""'),
    ("app.py", "self.password = password"),
    ("lexer.py", "token = Token.Literal.String"),
    ("app.py", 'PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]'),
    (
        "package-lock.json",
        '"integrity": "sha512-q8MnT2Lm0Zx8rT2mQ9vK4pL7wN3bYq8MnT2Lm0Zx8rT2mQ9vK4pL7wN3bY=="',
    ),
    ("app.py", f'password = "{PW}"  # secretsd:ignore'),
    ("app.py", 'url = "postgres://user:${DB_PASSWORD}@db/app"'),
]


@pytest.mark.parametrize(
    ("path", "text"), POSITIVES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(POSITIVES)]
)
def test_true_positives(engine: Engine, path: str, text: str) -> None:
    assert _rules(engine, text, path), f"nothing found in {path}"


@pytest.mark.parametrize(
    ("path", "text"), NEGATIVES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(NEGATIVES)]
)
def test_false_positives_stay_quiet(engine: Engine, path: str, text: str) -> None:
    assert _rules(engine, text, path) == []


def test_unquoted_assignment_in_code_is_an_expression(engine: Engine) -> None:
    assert _rules(engine, "PASSWORD = default_password2\n", "app.py") == []
    assert _rules(engine, "PASSWORD = kq83Jd02ms\n", "app.cfg") == ["config-password"]


def test_github_checksum_keeps_zero_padded_tokens() -> None:
    """About a fifth of real tokens have a checksum starting with 0: keep them."""
    assert base62(0) == "000000"
    assert base62(61) == "00000z"
    zero = github_token(zero_checksum=True)
    assert zero[-6] == "0"
    assert validate("github-crc32", zero)
    assert validate("github-crc32", TOKEN)
    assert not validate("github-crc32", bad_checksum(TOKEN))


def test_specific_rule_wins_over_generic(engine: Engine) -> None:
    found = engine.scan(Fragment("app.py", f'github_token = "{TOKEN}"'.encode()))
    assert [f.rule for f in found] == ["github-token"]


def test_line_and_column_and_redaction(engine: Engine) -> None:
    text = f"a = 1\nb = 2\nDB_PASSWORD = '{PW}'\n"
    (finding,) = engine.scan(Fragment("x.py", text.encode()))
    assert (finding.line, finding.column) == (3, 16)
    assert finding.secret == PW
    assert PW not in finding.redacted_line()
    assert PW not in repr(finding)
    assert PW in finding.redacted_line(show_secret=True)
    (token,) = engine.scan(Fragment("x.py", f'token = "{TOKEN}"'.encode()))
    assert token.redacted_secret == "ghp_*****"
    assert redact(PW) == "*****"


def test_invalid_utf8_and_private_key(engine: Engine) -> None:
    body = rand(64 * 4, seed=5)
    pem = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        + "\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    data = (
        b"\xff\xfe garbage \x80\n" + pem.encode() + b"\xc3\x28 password = '" + PW.encode() + b"'\n"
    )
    rules = [(f.rule, f.line) for f in engine.scan(Fragment("id_rsa", data))]
    assert ("private-key", 2) in rules
    assert ("generic-password", 8) in rules


def test_pure_re_matcher_agrees_with_hyperscan(engine: Engine) -> None:
    fallback = Engine(engine.rules, matcher="re")
    text = "\n".join(t for _, t in POSITIVES + NEGATIVES)
    for path in ("app.py", "values.yaml"):
        fast = sorted((f.rule, f.line) for f in engine.scan(Fragment(path, text.encode())))
        slow = sorted((f.rule, f.line) for f in fallback.scan(Fragment(path, text.encode())))
        assert fast == slow
    assert engine.matcher.name == "hyperscan"
    assert fallback.matcher.name == "re"


def _b64url(data: bytes) -> str:
    return b64encode(data).decode().rstrip("=").replace("+", "-").replace("/", "_")


_BCRYPT_BODY = rand(53, "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", seed=61)
_JOSE_HEADER = _b64url(b'{"alg":"ES256","typ":"JWT"}')
_DEMO_JWT = ".".join(
    (
        _JOSE_HEADER,
        _b64url(b'{"iss":"supabase-demo","role":"service_role","exp":1983812996}'),
        rand(43, seed=62),
    )
)

# Look-alikes met in real repositories (issue 12), with our own synthetic values.
REAL_SHAPE_NEGATIVES = [
    ("app/Http/Requests/SignUp.php", "'password' => 'required|string|min:10|confirmed',"),
    ("database/seeders/Users.php", f"'password' => '$2y$12${_BCRYPT_BODY}',"),
    ("app/settings.py", f"PASSWORD_DIGEST = 'pbkdf2_sha256$600000${rand(22, seed=63)}'"),
    ("config/service.yml", f"  password: CRYPT:{rand(43, seed=64)}=\n"),
    ("config/app.yml", f"  password: '{{cipher}}{rand(64, '0123456789abcdef', seed=65)}'\n"),
    ("locales/de.yml", "  password: 'Geheimzahl'\n"),
    ("lib/l10n/app_localizations_it.dart", "  String get passphrase => 'Frase-segreta';"),
    ("resources/js/translations.js", "  password_placeholder3: 'Repeat',"),
    ("docs/ENV.md", 'JWT_SECRET="long-random-string-of-hex-characters"'),
    ("repro.py", "SECRET_KEY = 'dev-key-01234567890123456789012345678901234567'"),
    ("Tests/ProfileTests.swift", '    $0.apiToken = "tok_abc123"'),
    ("docs/API.md", f"Authorization: Bearer {_JOSE_HEADER}..."),
    ("src/mask.test.ts", f"const text = 'Authorization: Bearer {_JOSE_HEADER}';"),
    ("docs/API.md", "curl -H 'Authorization: Bearer Zr3Kd9TfLm4Ns7Wv1Xb6Qc...' https://api"),
    ("internal/redact_test.go", '{"token", "xoxb-1234567890-abcdefghij"},'),
    ("tests/server.py", '"//registry.npmjs.org/:_authToken=npm_AbCdEfGhIjKlMnOpQrStUvWxYz01"'),
    ("README.md", f"curl -H 'Authorization: Bearer {_DEMO_JWT}' http://localhost:54321"),
    ("config/database.yml", "  password: TODO\n"),
    # look-alikes in installed packages (the precision guard's tree)
    ("client/_protocol.py", '    "passphrase": "string?",'),
    ("client/_protocol.py", '    "bypassCSP": "boolean?",'),
    ("client/models/volume.py", '    "secret": "V2SecretMountSource",'),
    ("client/models/projection.py", '    "service_account_token": "V2AccountTokenProjection",'),
]


@pytest.mark.parametrize(
    ("path", "text"),
    REAL_SHAPE_NEGATIVES,
    ids=[f"{p}-{i}" for i, (p, _) in enumerate(REAL_SHAPE_NEGATIVES)],
)
def test_real_shape_look_alikes_stay_quiet(engine: Engine, path: str, text: str) -> None:
    assert _rules(engine, text, path) == []


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("config/app.yml", "  password: 'Geheimzahl'\n"),  # the same word outside translations
        ("src/config.js", f"jwt.secret = 'Orchard@2031SecretForSigningSessions{rand(4)}123456789'"),
        ("app.py", f"SECRET_KEY = 'not-random-{rand(30, seed=66)}'"),
    ],
)
def test_real_shape_credentials_still_found(engine: Engine, path: str, text: str) -> None:
    assert _rules(engine, text, path), f"nothing found in {path}"


def _private_keys() -> list[tuple[str, str]]:
    """Whole unencrypted keys in every container a repository holds them in."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    none = serialization.NoEncryption()
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    openssh = serialization.PrivateFormat.OpenSSH
    traditional = serialization.PrivateFormat.TraditionalOpenSSL
    return [
        ("rsa-pkcs1", rsa_key.private_bytes(pem, traditional, none).decode()),
        ("rsa-pkcs8", rsa_key.private_bytes(pem, pkcs8, none).decode()),
        ("ec-sec1", ec_key.private_bytes(pem, traditional, none).decode()),
        ("ec-pkcs8", ec_key.private_bytes(pem, pkcs8, none).decode()),
        ("ed25519-pkcs8", ed_key.private_bytes(pem, pkcs8, none).decode()),
        ("ed25519-openssh", ed_key.private_bytes(pem, openssh, none).decode()),
        ("rsa-openssh", rsa_key.private_bytes(pem, openssh, none).decode()),
    ]


_KEYS = _private_keys()


@pytest.mark.parametrize(("name", "key"), _KEYS, ids=[name for name, _ in _KEYS])
def test_whole_keys_are_found_and_keys_cut_to_one_line_are_not(
    engine: Engine, name: str, key: str
) -> None:
    """A key detector's test or a shortened doc sample keeps the armour and one body line:
    that opens nothing. The whole key, in any container, is found."""
    found = engine.scan(Fragment("deploy/id.key", key.encode()))
    assert [(f.rule, f.confidence) for f in found] == [("private-key", "high")], name
    lines = key.strip().split("\n")
    if len(lines) > 3:  # a PKCS#8 Ed25519 key is one line: nothing to cut
        cut = "\n".join([lines[0], lines[1], lines[-1]]) + "\n"
        assert engine.scan(Fragment("tests/test_detector.py", cut.encode())) == [], name


def test_a_minified_line_is_read_around_each_hit(engine: Engine) -> None:
    """A bundle or source map is one line of megabytes: the checks and the report read the
    part around a hit, and the whole secret still stays inside what the report redacts. A
    name-based guess there is reported at ``low`` (minified code); a known format is not."""
    secret = password(seed=404)
    filler = ",".join(f'"k{i}":"v{i}"' for i in range(40_000))
    text = "{" + filler + f',"db_password":"{secret}",' + filler + "}"
    found = engine.scan(Fragment("dist/app.bundle.js.map", text.encode()))
    assert [f.rule for f in found] and all(f.secret == secret for f in found)
    finding = found[0]
    assert finding.line == 1 and finding.column == text.index(secret) + 1
    assert secret in finding.line_text and len(finding.line_text) <= 2 * 2048 + len(secret) + 64
    assert secret not in finding.redacted_line()
    assert finding.confidence == "low"
    token = github_token(seed=405)
    bundled = "{" + filler + f',"token":"{token}",' + filler + "}"
    found = engine.scan(Fragment("dist/app.bundle.js", bundled.encode()))
    assert [(f.rule, f.confidence) for f in found] == [("github-token", "high")]


def test_joined_path_pattern_equals_each_rule_asked_alone() -> None:
    """The one search that skips files no path rule wants must agree with asking every path
    rule on its own, on every path the rules' examples name, every file of this repository,
    and case variants of both (``(?i)`` is scoped per branch in the joined pattern)."""
    from pathlib import Path

    from secretsd.scanners.engine import any_path_pattern
    from secretsd.scanners.rules import RuleSet, load_default_rules

    rules = RuleSet(tuple(load_default_rules()))
    path_rules = tuple(rule for rule in rules.rules if rule.paths is not None)
    joined = any_path_pattern(path_rules)
    assert joined is not None
    root = Path(__file__).resolve().parents[2]
    paths = {e.path for rule in rules.rules for e in (*rule.must_match, *rule.must_not_match)}
    paths |= {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts}
    paths |= {p.upper() for p in paths} | {"deploy/MONGO-keyfile", "x/fernet-keys/3"}
    wanted = 0
    for path in paths:
        alone = any(rule.applies_to(path) for rule in path_rules)
        assert (joined.search(path) is not None) == alone, path
        wanted += alone
    assert wanted >= len(path_rules)  # the comparison saw paths each way


def test_path_patterns_that_cannot_be_joined_fall_back_to_each_rule() -> None:
    """A user's path pattern with a flag mid-pattern, a numbered backreference or a group name
    another rule also uses is not joined (each rule is then asked alone, as before)."""
    from dataclasses import replace

    from secretsd.scanners.engine import any_path_pattern
    from secretsd.scanners.rules import load_default_rules

    base = next(rule for rule in load_default_rules() if rule.paths is not None)
    for paths in (r"a/(?i)b$", r"(x)/\1$", r"(?P<n>a)$"):
        clash = replace(base, id="user-a", paths=paths)
        other = replace(base, id="user-b", paths=r"(?P<n>b)$")
        assert any_path_pattern((clash, other)) is None, paths
    assert any_path_pattern((base,)) is not None


@pytest.mark.parametrize(
    "shape",
    [
        'BOT_TOKEN = "{}"\n',
        'requests.post(url, auth=("api", "{}"))\n',
        "  mfa_secret: {}\n",
        "curl -u api:{} https://api.mailgun.net/v3/domains\n",
    ],
)
def test_documented_samples_stay_quiet_wherever_they_are_pasted(engine: Engine, shape: str) -> None:
    """A vendor's documentation sample (Mailgun's key, the Bot API's token, the usual TOTP
    secret) is quiet under every rule and at every tier, alone or repeated (tutorials double the
    16-character TOTP sample); a value of the same shape is not."""
    from secretsd.scanners.context import DOCUMENTED_SAMPLES

    for sample in DOCUMENTED_SAMPLES:
        for pasted in (sample, sample * 2):
            found = engine.scan(Fragment("src/notify.py", shape.format(pasted).encode()))
            assert found == [], f"{pasted[:8]}... reported in {shape!r}"
    fresh = "key-" + rand(32, seed=71).lower()
    assert engine.scan(Fragment("src/notify.py", shape.format(fresh).encode())) or "mfa" in shape


def test_a_continued_command_is_read_from_its_first_line(engine: Engine) -> None:
    """``-u user:pw`` four lines below ``curl ... \\`` belongs to curl: the window around a hit
    reaches back over continued lines, in both matchers, so the rule sees the command's name.
    A line that does not continue (no trailing backslash) stops the window as before."""
    secret = rand(14, seed=81)
    continued = (
        'curl -X POST "https://api.corp.lan/v1/messages" \\\n'
        '  --data-urlencode "To=+15550100" \\\n'
        '  --data-urlencode "Body=hello" \\\n'
        f'  -u "ops:{secret}"\n'
    )
    fallback = Engine(engine.rules, matcher="re")
    for scanner in (engine, fallback):
        found = [
            (f.rule, f.line) for f in scanner.scan(Fragment("docs/send.md", continued.encode()))
        ]
        assert ("curl-user-password", 4) in found, scanner.matcher.name
    broken = continued.replace('"Body=hello" \\\n', '"Body=hello"\n')
    found = [(f.rule, f.line) for f in engine.scan(Fragment("docs/send.md", broken.encode()))]
    assert ("curl-user-password", 4) not in found


def test_hex_keys_are_judged_against_hex_entropy_in_token_rules_too(engine: Engine) -> None:
    """32 random hex digits measure ~3.3-3.8 bits: a token rule's floor set for base62 (3.5 for
    Authorization schemes) would drop one that an assignment keeps. One ``entropy_floor`` holds
    both to hex's ceiling; shorter hex and other alphabets keep the rule's floor."""
    from secretsd.scanners.context import entropy_floor, shannon_entropy

    key = rand(32, "0123456789abcdef", seed=1)
    assert shannon_entropy(key) < 3.5
    assert entropy_floor(key, 3.5) == 3.1
    assert entropy_floor(key[:24], 3.5) == 3.5
    assert entropy_floor(rand(32, seed=2), 3.5) == 3.5
    line = f'    @Headers("Authorization: KakaoAK {key}")\n'
    found = [f.rule for f in engine.scan(Fragment("app/KakaoApi.kt", line.encode()))]
    assert "http-bearer-token" in found
    low = line.replace(key, "0" * 16 + "1" * 16)
    assert engine.scan(Fragment("app/KakaoApi.kt", low.encode())) == []
