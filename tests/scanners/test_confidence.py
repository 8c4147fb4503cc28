"""Confidence tiers: on every finding, in every format, as a floor, and tunable filters."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from secretsd.scanners.config import ScanConfig
from secretsd.scanners.engine import Engine
from secretsd.scanners.model import Fragment
from synth import github_token, password

from secretsd.cli.main import main

PW = password(seed=31)
TOKEN = github_token(seed=32)
UUID = "3f1c2b7a-9d4e-4a8b-b6c5-1e2f3a4b5c6d"
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture
def tiers(tmp_path: Path) -> Path:
    """One finding of each tier: a checksummed token, a strong password, a weak one."""
    root = tmp_path / "tiers"
    root.mkdir()
    (root / "gh.yaml").write_text(f"token: {TOKEN}\n")
    (root / "db.py").write_text(f'DB_PASSWORD = "{PW}"\n')
    (root / "settings.py").write_text(f'LICENSE_KEY = "{UUID}"\n')  # a UUID: maybe an id
    return root


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    code = main(["scan", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    for secret in (PW, TOKEN, UUID):
        assert secret not in out
    findings: list[dict[str, object]] = json.loads(out)["findings"]
    return findings


@pytest.mark.parametrize(
    ("floor", "expected"),
    [
        ("low", {"gh.yaml": "high", "db.py": "medium", "settings.py": "low"}),
        ("medium", {"gh.yaml": "high", "db.py": "medium"}),
        ("high", {"gh.yaml": "high"}),
    ],
)
def test_confidence_floor(
    tiers: Path, capsys: pytest.CaptureFixture[str], floor: str, expected: dict[str, str]
) -> None:
    found = _json(capsys, str(tiers), "--confidence", floor)
    assert {str(f["path"]): f["confidence"] for f in found} == expected


def test_default_floor_is_medium_and_config_can_change_it(
    tiers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert {f["path"] for f in _json(capsys, str(tiers))} == {"gh.yaml", "db.py"}
    (tiers / ".secretsd-scan.toml").write_text('[scan]\nconfidence = "high"\n')
    assert {f["path"] for f in _json(capsys, str(tiers))} == {"gh.yaml"}
    # the flag wins over the file
    assert len(_json(capsys, str(tiers), "--confidence", "low")) == 3


def test_text_and_sarif_carry_the_tier(tiers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tiers), "--confidence", "low"]) == 1
    out = capsys.readouterr().out
    assert "gh.yaml:1:8: github-token (GitHub token" in out
    assert "refresh)) [high confidence]" in out
    assert "[low confidence]" in out and "[medium confidence]" in out
    assert main(["scan", str(tiers), "--confidence", "low", "-f", "sarif"]) == 1
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, SCHEMA)
    results = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: (r["level"], r["rank"])
        for r in document["runs"][0]["results"]
    }
    assert results == {
        "gh.yaml": ("error", 90.0),
        "db.py": ("warning", 60.0),
        "settings.py": ("note", 30.0),
    }


def test_bad_confidence_is_a_clear_error(tiers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tiers), "--confidence", "certain"]) == 2
    assert "--confidence 'certain' is not known" in capsys.readouterr().err
    (tiers / ".secretsd-scan.toml").write_text('[filters]\nuuid_values = "maybe"\n')
    assert main(["scan", str(tiers)]) == 2
    err = capsys.readouterr().err
    assert "[filters] uuid_values must be one of low, drop" in err


def test_redaction_keeps_only_the_public_prefix(
    tiers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = {str(f["path"]): f for f in _json(capsys, str(tiers), "--confidence", "low")}
    assert found["gh.yaml"]["secret"] == "ghp_*****"
    assert found["db.py"]["secret"] == "*****"
    assert found["settings.py"]["secret"] == "*****"
    assert found["db.py"]["match"] == 'DB_PASSWORD = "*****"'


def _tiers(config: ScanConfig, path: str, text: str) -> list[str]:
    engine = Engine(config.rules, filters=config.filters)
    return [f.confidence for f in engine.scan(Fragment(path, text.encode()))]


def test_filters_in_the_config_file(tmp_path: Path) -> None:
    default = ScanConfig.load(tmp_path)
    weak = "password = 'sunshine'\n"
    test_pw = f'password = "{PW}"\n'
    assert _tiers(default, "tests/test_app.py", weak) == ["low"]
    assert _tiers(default, "app.py", weak) == ["medium"]
    assert _tiers(default, "tests/test_app.py", test_pw) == ["medium"]
    assert _tiers(default, "README.md", "postgres://app:Xk29fj2k3Lm@db.acme.dev/x") == ["medium"]
    assert _tiers(default, "app.py", 'password = "acme-dev-pw"') == ["medium"]
    (tmp_path / ".secretsd-scan.toml").write_text(
        "[filters]\n"
        'weak_passwords = "drop"\n'
        'test_paths = "low"\n'
        'example_hosts = [".acme.dev"]\n'
        'placeholders = ["ACME-DEV-PW"]\n'
    )
    tuned = ScanConfig.load(tmp_path)
    assert _tiers(tuned, "app.py", weak) == []
    assert _tiers(tuned, "tests/test_app.py", weak) == []
    assert _tiers(tuned, "tests/test_app.py", test_pw) == ["low"]
    assert _tiers(tuned, "README.md", "postgres://app:Xk29fj2k3Lm@db.acme.dev/x") == []
    assert _tiers(tuned, "app.py", 'password = "acme-dev-pw"') == []


def test_encrypted_private_keys_filter(tmp_path: Path) -> None:
    pem = (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + "\n".join(["MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIaOiSBmEPNgUCAggA"] * 4)
        + "\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    assert _tiers(ScanConfig.load(tmp_path), "key.pem", pem) == []
    (tmp_path / ".secretsd-scan.toml").write_text('[filters]\nencrypted_keys = "low"\n')
    assert _tiers(ScanConfig.load(tmp_path), "key.pem", pem) == ["low"]


def test_hook_floor(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hook blocks at medium by default; --confidence and [scan] confidence move the floor."""
    from conftest import git
    from secretsd.scanners import hook

    monkeypatch.chdir(repo)
    (repo / "test_login.py").write_text("client.login(username='qa', password='sunshine')\n")
    git(repo, "add", "test_login.py")
    assert hook.HOOK_CONFIDENCE == "medium"
    assert hook.main([]) == 0  # a weak password is low confidence
    assert hook.main(["--confidence", "low"]) == 1
    assert PW not in capsys.readouterr().err
    (repo / "db.py").write_text(f'DB_PASSWORD = "{PW}"\n')
    git(repo, "add", "db.py")
    assert hook.main([]) == 1
    (repo / ".secretsd-scan.toml").write_text('[scan]\nconfidence = "high"\n')
    assert hook.main([]) == 0
    capsys.readouterr()


def test_every_secret_on_a_line_is_masked_in_each_report(tmp_path: Path) -> None:
    from synth import aws_key_id, rand

    key_id, secret = aws_key_id(seed=51), rand(40, seed=52)
    line = f"aws_access_key_id={key_id} aws_secret_access_key={secret}\n"
    engine = Engine(ScanConfig.load(tmp_path).rules)
    found = engine.scan(Fragment("creds.sh", line.encode()))
    assert len(found) == 2
    for finding in found:
        shown = finding.redacted_line()
        assert key_id not in shown and secret not in shown
        assert key_id[4:] not in shown and secret[:8] not in shown


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        # weak but real, in a clear password context outside tests: the default floor reports it
        ("docker/Dockerfile", "ENV MYSQL_ROOT_PASSWORD=mysql\n", ["medium"]),
        ("app/Db.java", 'private static final String PASSWORD = "toor";\n', ["medium"]),
        ("app/Db.java", 'private static final String PASSWORD = "87654321";\n', ["medium"]),
        ("src/db.py", 'conn = connect(host="db", password="orchid")\n', ["medium"]),
        ("queue/conn.go", 'url := "amqp://guest:guest@localhost:5672/"\n', ["medium"]),
        ("docs/setup.md", "sshpass -p alpine ssh root@10.0.0.7\n", ["medium"]),
        # the same in test code: low (issue 12)
        ("tests/test_db.py", 'PASSWORD = "orchid"\n', ["low"]),
        ("tests/test_queue.py", 'URL = "amqp://guest:guest@localhost:5672/"\n', ["low"]),
        ("ci/e2e_tests/login.py", 'password = "orchid"\n', ["low"]),
        # fixture words stay low anywhere; comparisons and other arguments are not assignments
        ("src/db.py", 'password = "foobar"\n', ["low"]),
        ("src/tiers.py", '    "password": "medium",\n', ["low"]),
        ("config/database.php", "    'password' => 'orchid',\n", ["medium"]),
        ("dialects/base.py", 'e = create_engine("mysql://scott:tiger@localhost/test")\n', ["low"]),
        ("src/auth.py", 'if update_password == "always":\n', ["low"]),
        # a call that fetches a credential takes names and options, not the credential
        ("src/krb.py", "cred = get_cred_with_password(user, pw, usage='initiate')\n", []),
        ("src/cli.py", "env['SSH_ASKPASS_REQUIRE'] = 'force'\n", ["low"]),
        # a default in ${VAR:-default} runs wherever the variable is unset: assigned to a
        # password variable it is as clear as ENV MYSQL_ROOT_PASSWORD=mysql, weak or not
        ("compose.yml", "      DB_PASSWORD: ${DB_PASSWORD:-Wq9x7Lm2vRt}\n", ["medium"]),
        ("scripts/run.sh", "DB_PASSWORD=${PGPASSWORD:-mysql}\n", ["medium"]),
        ("tests/run.sh", "DB_PASSWORD=${PGPASSWORD:-mysql}\n", ["low"]),
        ("scripts/run.sh", "DB_NAME=${PGDATABASE:-mysql}\n", []),
        # Passw0rd-style spellings are deployed as they are (tomcat-users.xml, SQL Server sa)
        ("conf/tomcat-users.xml", '<user username="tomcat" password="Passw0rd"/>\n', ["medium"]),
        ("tests/conftest.py", 'PASSWORD = "Passw0rd"\n', ["low"]),
        # prose that sets the value apart as a literal states it; a bare word may be English
        ("docs/db2.rst", "The owner is ``db2inst1``; its password is ``manager``.\n", ["medium"]),
        ("docs/db2.rst", "The owner is db2inst1; its password is manager.\n", []),
        # a word of one's own before "pass" is a chosen password; a field's name is not
        ("docker-compose.yml", "      MYSQL_PASSWORD: ccloadpass\n", ["medium"]),
        ("config/app.yml", "password: new_password\n", []),
        ("docker-compose.yml", "      MYSQL_PASSWORD: mysql_password\n", []),
        ("docker-compose.yml", "      MARIADB_PASSWORD: lantern_password\n", ["medium"]),
        ("docker-compose.yml", "      MARIADB_PASSWORD: root_password\n", []),
        ("docker-compose.yml", "      MARIADB_PASSWORD: lanternsecret\n", ["medium"]),
        # a UUID under an API key's or token's own name is the key (Heroku, ENTSO-E issue
        # UUID keys); under an id's name it is an id, and in tests it may be a fixture
        (".Renviron", "WEATHER_API_KEY=3b9c6f0e-8a41-4d2e-9f1c-6e2a7d5b8c40\n", ["medium"]),
        ("app/settings.py", 'PARTNER_TOKEN = "3b9c6f0e-8a41-4d2e-9f1c-6e2a7d5b8c40"\n', ["medium"]),
        ("app/settings.py", 'TENANT_ID_TOKEN = "3b9c6f0e-8a41-4d2e-9f1c-6e2a7d5b8c40"\n', ["low"]),
        ("tests/test_api.py", 'API_KEY = "3b9c6f0e-8a41-4d2e-9f1c-6e2a7d5b8c40"\n', ["low"]),
        # psql puts a variable's value at :'name'
        ("db/01-roles.sql", "CREATE ROLE reader LOGIN PASSWORD :'reader_password';\n", []),
        ("db/01-roles.sql", "CREATE ROLE reader LOGIN PASSWORD 'Kq83Jd02ms';\n", ["medium"]),
        # PostgreSQL keeps md5(password || user) as 'md5' + 32 hex: a stored hash
        ("db/roles.sql", "ALTER ROLE reader PASSWORD 'md5a41f68f2c7139f8df56ab8d934b74890';\n", []),
        # systemd's LoadCredential=ID:PATH names a file; a #word# inside a password is no template
        ("app.service", "LoadCredential=db-password:/run/secrets/app_db_password\n", []),
        ("LockServer.ini", "OperatorPassword=Kq8#kj#Jd02ms\n", ["medium"]),
        # a concrete user's all-digit password in a URI is weak but real; a run of x is elided
        ("src/Fetch.java", 'url("ftp://scanner:424242@10.20.0.5/in.xml");\n', ["medium"]),
        ("src/Fetch.java", 'url("ftp://scanner:xxxxxx@10.20.0.5/in.xml");\n', []),
        ("esp/wifi.ino", 'const char *wifi_password = "TheSSIDPassword";\n', []),
        # in a config file every value is a literal: joined words there are a chosen password
        ("docker-compose.yml", "      MYSQL_PASSWORD: gin_layout\n", ["medium"]),
        ("docker-compose.yml", "      MYSQL_PASSWORD: not_set\n", []),
        ("app/db.py", "password = gin_layout\n", []),
        # a Markdown table row ties the setting to its value like an assignment
        ("README.md", "| `POSTGRES_PASSWORD` | `booking` | database password |\n", ["medium"]),
        # XML gives the password its own slot: as clear as an assignment
        ("conf/settings.xml", "<password>bankpass</password>\n", ["medium"]),
        ("conf/persistence.xml", '<property name="jdbc.password" value="bankpass"/>\n', ["medium"]),
        # the default of an environment lookup of a password variable runs where it is unset
        ("app/settings.py", 'pw = os.environ.get("DB_PASSWORD", "postgres")\n', ["medium"]),
        ("src/db.js", "const password = process.env.DB_PASSWORD ?? 'postgres';\n", ["medium"]),
        ("src/db.js", "const password = process.env.DB_PASSWORD || process.env.PGPASS;\n", []),
        ("app/settings.py", 'host = os.environ.get("DB_HOST", "postgres")\n', []),
        # "Your..." in CamelCase says what to put there
        ("README.md", '    "SecretKey": "YourSuperSecretKeyThatIsLong42!",\n', []),
        ("scripts/run.sh", "DB_PASSWORD=${PGPASSWORD:-}\n", []),
        # the word "password" in another language is a field name, not a value
        ("docs/API.md", '"password": "senha"\n', []),
        ("locales/es.json", '"Password": "Contraseña",\n', []),
        # a UUID in a password slot is a generated password; under other names it may be an
        # id, so it stays low there (issue 12), and in tests
        ("helm/values-prod.yaml", f"  password: {UUID}\n", ["medium"]),
        ("tests/test_sp.py", f'PASSWORD = "{UUID}"\n', ["low"]),
        ("helm/values-prod.yaml", f"  api_key: {UUID}\n", ["medium"]),
        ("helm/values-prod.yaml", f"  license_key: {UUID}\n", ["low"]),
        # a password change's fields name the password too; their UI labels stay quiet
        ("docs/API.md", '  "newPassword": "NewP@ss123",\n', ["medium"]),
        ("docs/API.md", '  "currentPassword": "Wq9x7Lm2vRt",\n', ["medium"]),
        ("locales/fr.json", '  "newPassword": "Nouveau",\n', []),
        # a concrete user's digits-only password on a local database is its real password;
        # a role user's shows the URI's shape
        ("app/config.py", "URI = 'mysql+pymysql://root:123456@localhost/shop'\n", ["medium"]),
        ("docs/setup.md", "DATABASE_URL=postgres://user:123456@localhost/app\n", ["low"]),
        ("tests/test_db.py", "URI = 'mysql+pymysql://root:123456@localhost/shop'\n", ["low"]),
        # elided, self-declared test values, instructions in any language, public keys
        ("docs/RELEASING.md", "   password = pypi-AgEN...      # your PyPI token\n", []),
        ("config/app.yml", '  access_token_secret: "unit-test-only-access-secret-000"\n', []),
        ("README.md", 'GOOGLE_CLIENT_SECRET="DÁN_CLIENT_SECRET"\n', []),
        ("docs/deploy.md", "SUPABASE_ANON_KEY=sb_publishable_DnG9gbdp_jQFVHRtwdrsBQ_iN0wZX\n", []),
        # a role word set as the password beside a concrete user is that user's password;
        # beside a role-word user, or alone, it shows a shape
        (
            "docker-compose.yml",
            "  POSTGRES_USER: postgres\n  POSTGRES_PASSWORD: password\n",
            ["medium"],
        ),
        (
            "tests/compose.yml",
            "  POSTGRES_USER: postgres\n  POSTGRES_PASSWORD: password\n",
            ["low"],
        ),
        ("config/db.yml", "  user: user\n  password: password\n", []),
        ("config/db.yml", "  password: password\n", []),
        # the rule's own user group names a concrete user: a role word is that user's password
        ("scrape.py", "auth = HTTPBasicAuth('kalyan', 'secret')\n", ["medium"]),
        ("scrape.py", "auth = HTTPBasicAuth('username', 'password')\n", []),
        # no user at all in a URI: its shape; a batch file's own path; phrases saying "test"
        ("docs/ENV.md", "Format: `redis://:password@127.0.0.1:6379/0`\n", []),
        ("run.bat", "set PWD=%~dp0\n", []),
        (
            "src/app.test.ts",
            '  SESSION_SECRET: "test-session-secret-that-is-longer-than-32",\n',
            [],
        ),
        (
            "config/settings.py",
            "SECRET_KEY = 'django-insecure-dev-key-change-in-production-2x9q'\n",
            [],
        ),
        # an e-mail address under a key name is the account, not its secret
        (".env", "MINIO_ACCESS_KEY=storage@ops.internal\n", []),
        # yourSessionKey1 says what to put there, as YourAppKey does
        ("docs/sample-env.md", "APP_KEYS=yourSessionKey1,yourSessionKey2,yourSessionKey3\n", []),
        # Datadog's secrets backend and Jasypt resolve these when the program starts
        ("conf.d/sqlserver.yaml", '    password: "ENC[k8s_secret@datadog/sql/password]"\n', []),
        (
            "application.properties",
            "spring.datasource.password=ENC(G6N718UuyPE5bHyWKyuLQSm02auQPUtm)\n",
            [],
        ),
        # the literal a decoding call turns into the key is the key
        (
            "jupyterhub_config.py",
            'c.JupyterHub.cookie_secret = bytes.fromhex("d1b783640ddfd1124311f830590bc86e17e58fe6808b864f427d53936e684090")\n',
            ["medium"],
        ),
        # .* inside a random password is two of its characters; at a pattern's edge, a pattern
        ("sssd.conf", "ldap_default_authtok = Y8t.*aVb6-V005QEz\n", ["medium"]),
        ("src/filters.py", 'password = ".*secret.*"\n', []),
        # "fake" as one of a few short words declares the value
        (
            "tests/conftest.py",
            '    monkeypatch.setenv("OKTA_API_TOKEN", "00-fake-okta-token")\n',
            [],
        ),
        # a URI whose host is joined on in code
        (
            "consumer/main.go",
            '\tconn, err := amqp.Dial("amqp://orders:Tq4Wn8Zr2Lm@" + host + "/")\n',
            ["medium"],
        ),
        (
            "proxy/amqp_test.go",
            '\tamqp.Dial("amqp://guest:canary-password-marker@" + addr + "/")\n',
            [],
        ),
        # a user given as an argument on the password's own line is a concrete user
        (
            "app.py",
            'conn = psycopg2.connect(host="localhost", user="postgres", password="password")\n',
            ["medium"],
        ),
        (
            "app.py",
            'conn = psycopg2.connect(host="localhost", user="user", password="password")\n',
            [],
        ),
        # a setter takes joined words as a string: a chosen password, not a variable's name
        ("src/main/java/Main.java", '        factory.setPassword("ridge_lantern");\n', ["medium"]),
        ("src/main/java/Main.java", '        form.setPassword("not_set");\n', []),
        # the default of a Jinja expression is used wherever the variable is unset
        (
            "roles/db/defaults/main.yml",
            "db_password: \"{{ vault_db_password | default('Tq4Wn8Zr2Lm') }}\"\n",
            ["medium"],
        ),
        ("roles/db/defaults/main.yml", "db_password: \"{{ lookup('env', 'DB_PASSWORD') }}\"\n", []),
        # a literal that code joins more onto is only the value's start
        (
            "scripts/deploy.ps1",
            '$SQL_ADMIN_PASSWORD = "Trial@Pass" + (-join ((65..90) | Get-Random -Count 8))\n',
            [],
        ),
        # self-declared test values: fixture, e2e, do-not-use
        (
            "src/__tests__/env.test.ts",
            '      JWT_SECRET: "ACME_TEST_SECRET_DO_NOT_USE_env_a",\n',
            [],
        ),
        ("tests/proxy.test.ts", 'const STORED_OAT_KEY = "sk-ant-oat01-fixture-cached";\n', []),
        # a service prefix with a failed checksum, or a body of words, was typed by a person
        (
            "tests/fixtures/deploy.sh",
            'export GITHUB_TOKEN="ghp_Zr3Kd9TfLm4Ns7Wv1Xb6Qc2Jh8Pe5Ry0Uq3K"\n',
            [],
        ),
        (
            "tests/fixtures/deploy.sh",
            'export GITHUB_TOKEN="ghp_ReleaseBotTokenComesFromVaultLaterToday"\n',
            [],
        ),
        # a login stated in Chinese, and a password after a blank when it has a digit
        ("README.md", "mysql8 用户名密码 root Wq9x7Lm2\n", ["medium"]),
        ("README.md", "redis 密码 Wq9x7Lm2\n", ["medium"]),
        ("docs/faq.md", "密码 must be set\n", []),
        # keytool's default password for a keystore of one's own keys; for the truststore of
        # public certificates it guards nothing secret
        (
            "docs/SSL_SETUP.md",
            "keytool -importkeystore -srckeystore a.jks -srcstorepass changeit\n",
            ["medium"],
        ),
        (
            "docker/java/Dockerfile",
            "    -storepass changeit -file /tmp/corp-root-ca.crt\n",
            ["low"],
        ),
        # GeoServer's plain: prefix keeps the password as it is; crypt1: is encrypted
        (
            "geoserver/datastore.xml",
            '    <entry key="passwd">plain:Tq4Wn8Zr2LmXv7Kd</entry>\n',
            ["medium"],
        ),
        (
            "geoserver/datastore.xml",
            '    <entry key="passwd">crypt1:Tq4Wn8Zr2LmXv7Kd</entry>\n',
            [],
        ),
        # a shadow file line is no pgpass line
        ("ops/etc/shadow.bak", "daemon:*:19480:0:99999:7:::\n", []),
        # JNDI credentials, pexpect's answer to a password prompt, kadmin and racadm flags
        (
            "src/main/java/Ldap.java",
            '    env.put(Context.SECURITY_CREDENTIALS, "N7q$Wp2Lm");\n',
            ["medium"],
        ),
        (
            "scripts/read.py",
            "    child.expect('password: ')\n    child.sendline('Tq4Wn8Zr2Lm')\n",
            ["medium"],
        ),
        ("scripts/read.py", "    child.expect('login: ')\n    child.sendline('operator')\n", []),
        ("kdc/setup.sh", 'kadmin.local -q "addprinc -pw Tq4Wn8Zr2Lm admin/admin"\n', ["medium"]),
        ("idrac.ps1", "racadm -r $server -u root -p calvin getsysinfo\n", ["medium"]),
        # a password column named in another language is a password column
        (
            "README.md",
            "| Usuario | Contraseña | Rol |\n|---|---|---|\n| operador | Tq4Wn8Zr2Lm | Operador |\n",
            ["medium"],
        ),
        ("docs/install.md", "| Логин | Пароль |\n|---|---|\n| admin | Tq4Wn8Zr2Lm |\n", ["medium"]),
        ("README.md", "| Usuario | Rol |\n|---|---|\n| operador | Tq4Wn8Zr2Lm |\n", []),
        # a table drawn with box characters reads like a Markdown table
        (
            "LOGIN_CREDENTIALS.md",
            "┌──────────┬─────────────┐\n│ Username │ Password    │\n├──────────┼─────────────┤\n"
            "│ operator │ Tq4Wn8Zr2Lm │\n└──────────┴─────────────┘\n",
            ["medium"],
        ),
        # "eyJ..." without a JWT's two dots was cut or mangled by hand
        (
            "src/ApiRequest.java",
            'h.put("authorization", "Bearer eyJ0eXUTvA7hAENQtj877CXnyd0A");\n',
            [],
        ),
        # the lookup's own name decides, not an object key of the same name before it
        ("src/config.js", "  MONGO_PASSWORD: process.env.MONGO_PASSWORD || 'admin',\n", ["medium"]),
        ("compose.yml", "  KC_ADMIN_PASSWORD: ${KC_ADMIN_PASSWORD:-admin}\n", ["medium"]),
        # a long phrase typed as a signing key is one, fixture word or not; a short one is weak
        (
            "src/JwtUtil.java",
            'static final String SECRET = "mySecretKeyForJWTTokenGenerationAndValidation1234";\n',
            ["medium"],
        ),
        ("src/db.py", 'password = "mysecretpassword1"\n', ["low"]),
        # "example" spelled in digits, and where to get a key, are not one
        ("docker-compose.yml", "      KC_DB_PASSWORD: ${POSTGRES_PASSWORD:-eX4mP13p455w0Rd}\n", []),
        ("README.md", "  -e TELEGRAM_BOT_APIKEY=t.me/BotFather \\\n", []),
        # a long chosen word before "password" is still a chosen password
        ("docker-compose.yml", "      - NEO4J_PASSWORD=liminalpassword\n", ["medium"]),
        # a generated password may hold a bracket; code and markup pair theirs
        ("includes/Database.php", "    private $password = '1KX(M3wwBbbW';\n", ["medium"]),
        ("docs/user-update.md", 'password := "xWwvJ]6NMw+bWH-d"\n', ["medium"]),
        ("app/db.py", 'password = "load(pw1.txt)"\n', []),
        ("app/db.py", 'password = "[hidden]2024"\n', []),
        # round 12: an environment variable's name, or a login dict, says the word is a password
        ("tools/db.py", 'ENV = {"PGPASSWORD": "hollyhock"}\n', ["medium"]),
        (
            "deploy/fab.py",
            'c = Connection("nas", user="mira", connect_kwargs={"password": "hollyhock"})\n',
            ["medium"],
        ),
        ("harness/lib.sh", 'KC_ADMIN_PASSWORD_DEFAULT="Qv7tr#2031x"\n', ["medium"]),
        # MinIO's documented default secret key opens every default install
        (".env", "STORE_SECRET_KEY=minioadmin\n", ["medium"]),
        (".env", "STORE_ACCESS_KEY=minioadmin\n", []),
        # slots, not values: role words joined, LiteLLM's os.environ/ lookup, a <TOKEN> after
        # the user, a search-only key (public by design), a long flag after -p
        (".env.example", "MEDIA_URL=cloudinary://api_key:api_secret@acme-media\n", []),
        ("docs/deploy.md", 'DATABASE_URL="mysql://app:secure_password@db:3306/app"\n', []),
        ("proxy/config.yaml", '      aws_secret_access_key: "os.environ/BEDROCK_SECRET_KEY"\n', []),
        ("docs/jenkins.md", "java -jar jenkins-cli.jar -auth admin:<API_TOKEN> list-jobs\n", []),
        (
            "functions/constants.js",
            "  SEARCH_ONLY_API_KEY: '6be49f7241c1998f0c23357437a46cec',\n",
            [],
        ),
        ("docs/mongo.md", "mongosh -u root -p --authenticationDatabase admin\n", []),
        # a network's name beside its password, a ColdFusion expression, a Delphi field's type
        ("include/secrets.h", '#define SECRET_SSID_FALLBACK "garden-shed"\n', []),
        ("admin/sync.cfm", '<cfldap username="sync" password="#application.ldapPass#">\n', []),
        ("src/uLogin.pas", "    edtPassword: TEdit;\n", []),
        # Puppet's Sensitive() only hides the literal it wraps; PagerDuty's routing key sends
        # alerts; a Windows answer file's pass and an LDAP expiry time are no values
        ("manifests/mysql.pp", "    password => Sensitive('Tq4Wn8Zr2Lm!'),\n", ["medium"]),
        ("ops/pagerduty.env", "PD_ROUTING_KEY=6be49f7241c1998f0c23357437a46cec\n", ["medium"]),
        ("packer/Autounattend.xml", '  <settings pass="windowsPE">\n', []),
        ("ipa/sysaccounts.ldif", "passwordExpirationTime: 20380119031407Z\n", []),
        # PHP's hex2bin() only decodes the literal it is given
        (
            "application/config/config.php",
            "$config['encryption_key'] = hex2bin('6be49f7241c1998f0c23357437a46cec');\n",
            ["medium"],
        ),
        # round 13: a dotted setting is judged by its last segment, the namespace before it
        # says nothing about the value; an UPPER_SNAKE name is no token
        (
            "config/kibana.yml",
            'xpack.encryptedSavedObjects.encryptionKey: "Tq4Wn8Zr2LmXv7Kd3Jh9Pb5Ys1Qa6Ue0"\n',
            ["medium"],
        ),
        ("config/app.properties", "encrypted.password.hint=Tq4Wn8Zr2Lm\n", []),
        ("README.md", 'npm config set //npm.corp.lan/:_authToken "SECRET_NPM_TOKEN"\n', []),
        # a role word as the password of a user the command line names is that user's weak
        # password; beside a role-word user it is the shape only
        ("scripts/setup-db.sh", "mysql -u root -psecret -e 'CREATE DATABASE app;'\n", ["medium"]),
        ("scripts/setup-db.sh", "mysqladmin -u root password 'secret'\n", ["medium"]),
        ("scripts/setup-db.sh", "mysql -u user -ppassword\n", ["low"]),
        # debconf preseeding states the password it sets: a weak one outside tests is medium
        (
            "vagrant/bootstrap.sh",
            "debconf-set-selections <<< 'mysql-server mysql-server/root_password password root'\n",
            ["medium"],
        ),
        (
            "tests/fixtures/bootstrap.sh",
            "debconf-set-selections <<< 'mysql-server mysql-server/root_password password root'\n",
            ["low"],
        ),
        # anonymous FTP opens only what a server publishes; a rated slot names no value
        ("lib/Mirror.pm", '$ftp->login("anonymous", "mirror-sync@corp.io") or die;\n', []),
        ("docs/ha.md", "sentinel auth-pass mymaster strong_redis_password\n", []),
        ("docs/ha.md", "sentinel auth-pass mymaster Tq4Wn8Zr2Lm\n", ["medium"]),
        # a Google app password drawn rich in vowels still has two pairs no word makes
        (
            "docs/relay.md",
            'echo "[smtp.gmail.com]:587 alerts.corp@gmail.com:oyftayzefeptxdrb" > /etc/postfix/sasl_passwd\n',
            ["medium"],
        ),
        # a setter call names the setting its second argument sets; a bare tuple is data
        ("src/main/scala/Load.scala", '  .option("password", "docker")\n', ["medium"]),
        ("src/Db.java", 'props.setProperty("password", "docker");\n', ["medium"]),
        ("src/fixtures.py", 'ROWS = [("password", "salt", 64)]\n', []),
        # Spring's ${NAME:default} is the password wherever the variable is unset
        ("src/main/resources/application.yml", "    password: ${DB_PASSWORD:townE}\n", ["medium"]),
        (
            "src/main/resources/application.yml",
            "    password: ${spring.datasource.pw:root}\n",
            ["medium"],
        ),
        # pydantic's Field("...") takes the default first: the literal is the value
        (
            "config/db.py",
            '    db_password: str = Field("Tq4Wn8Zr2Lm!", env="DB_PASSWORD")\n',
            ["medium"],
        ),
        # getattr's third argument is the default; a value saying fake is a fixture's; German
        # prose "das Passwort lautet"
        (
            "notifications/sms.py",
            'TOKEN = getattr(settings, "SMS_API_TOKEN", "6be49f7241c1998f0c23357437a46cec")\n',
            ["medium"],
        ),
        ("tests/auth.test.ts", '      refresh_token: "fake-gkpql5zvjy98",\n', []),
        (
            "docs/de/neustart.md",
            "Das Passwort lautet `Tq4Wn8Zr2Lm!` (bis zur Umstellung).\n",
            ["medium"],
        ),
        # an expression's fallback literal runs wherever the expression is empty
        (
            "Auth/ClientFactory.cs",
            'ClientSecret = _options.ClientSecret ?? "Zr3Kd9TfLm4Ns7Wv1Xb6Qc2Jh8Pe5Ry0",\n',
            ["medium"],
        ),
        ("src/db.ts", "  password: config.password || fallbackPassword,\n", []),
        # the account a role word opens is named in the key; base64 of a placeholder
        ("README.md", "  -e MINIO_ROOT_PASSWORD=secret \\\n", ["medium"]),
        ("docs/devstack.md", "ADMIN_PASSWORD=pass\n", ["medium"]),
        (".env", "DB_PASSWORD=password\n", []),
        ("k8s/secret.yaml", '  DB_PASSWORD: "UkVQTEFDRV9XSVRIX1RIRV9EQl9QQVNTV09SRA=="\n', []),
        # $( amid a salt's random symbols is chance; a whole $(command) is a template
        (
            "wp-config.php",
            "define('NONCE_KEY', 'q@,Y]3B#wxh#-$C8Fwj`Y1Qbr9N~Z06t$(Pn5B|dtL:N=FQ*E![o`m#Y#C%|8kj3');\n",
            ["high"],
        ),
        ("deploy/.env", "API_TOKEN=$(cat /run/secrets/api_token)\n", []),
        # the quoted default of a password variable's lookup is a value, even made of words,
        # unless every word names a slot
        (
            "src/Db.scala",
            'val dbPass = sys.env.getOrElse("DB_PASSWORD", "Tq4Wn8Zr2Lm!")\n',
            ["medium"],
        ),
        ("lib/bridge.rb", 'pw = ENV.fetch("DATABASE_PASSWORD", "harbor_lantern")\n', ["medium"]),
        ("app/settings.py", 'DB_PASS = os.getenv("DB_PASS", "admin_pass")\n', []),
        ("app/settings.py", 'DB_PASS = os.getenv("DB_PASS", "not_set")\n', []),
        # "replace" and "fake" in other languages; CKAN's string: prefix
        ("helm/values.yaml", '  sessionSecret: "VERVANGEN"\n', []),
        ("config/test.properties", "app.datasource.password=nep-wachtwoord-test\n", []),
        (
            "ckan.ini",
            "api_token.jwt.encode.secret = string:Tq4Wn8Zr2LmXv7Kd3Jh9Pb5Ys1\n",
            ["medium"],
        ),
        # "password" in another language names a password: a typed-looking value is one, and
        # prose that sets a weak one apart as a literal states it
        ("docs/TESTING.md", "- Пароль: `Orchid123456`\n", ["medium"]),
        ("docs/setup.md", "Senha: `lanterna`\n", ["medium"]),
        # a config line that is only key and value: the blank assigns (keepalived, mosquitto)
        ("keepalived/keepalived.conf", "        auth_pass 271828\n", ["medium"]),
        # lower-case words as an environment lookup's default are what signs when it is unset
        (
            "src/auth.js",
            "  jwt.sign(p, process.env.JWT_SECRET || 'lantern_secret_key')\n",
            ["medium"],
        ),
        ("app.py", 'SECRET_KEY = os.getenv("SECRET_KEY", "cle_secrete_a_changer")\n', []),
        # a value naming where the secret is kept, in any language, says where to look
        ("docs/runbook.md", "- Passwort: `siehe-Tresor`\n", []),
        ("docs/runbook.md", "- Password: `stored-in-keyvault`\n", []),
        # prose in program source's text (a string, a comment, an element's text) is prose;
        # the same words in code are an expression
        ("src/server.js", "console.log('   Senha: Lantern2031');\n", ["medium"]),
        ("src/Login.tsx", '<p className="note">Mot de passe: Lantern2031</p>\n', ["medium"]),
        ("src/api.ts", "  password: form.password,\n", []),
        # a call's keyword argument names the value (client_id is an identifier); a Stripe
        # publishable key runs in every customer's browser
        (
            "related.py",
            'auth = SpotifyClientCredentials(client_id="5b1f9c3e7a2d4f6b8c0e1a3d5f7b9c2e",\n',
            [],
        ),
        ("views/cart.blade.php", '<button data-key="pk_test_Zr3Kd9TfLm4Ns7Wv1Xb6Qc2J">\n', []),
        # a short secret mixing three kinds of character is judged against its length's
        # ceiling; a value masked with an ellipsis in its middle is no secret
        ("casc/jenkins.yaml", '              secret: "Rk8@2740"\n', ["medium"]),
        ("logs/crash.json", '{"headers":{"Authorization":"re_\u2026Yq4h"}}\n', []),
        # "your ..." in other languages, and an adjective before the role word, leave a slot
        ("README.md", "JWT_SECRET=tu_clave_secreta_larga_2024\n", []),
        ("docs/MQTT.md", "MQTT_PASSWORD=ditt_lösenord\n", []),
        ("README.md", "NEO4J_PASSWORD=la_tua_password_neo4j\n", []),
        ("docs/ESPHOME.md", 'wifi_password: "Twoje_Haslo"\n', []),
        ("README.md", 'SECRET_KEY="kunci_rahasia_anda"\n', []),
        ("README.md", "DB_PASSWORD=şifreniz\n", []),
        # a "storage key" in code names where something is kept; 64 random bytes under it are
        # an Azure storage account's key
        ("src/cart.ts", "const STORAGE_KEY = 'cart_items_v2';\n", []),
        (
            "infra/storage.tf",
            'dwh_storage_key = "aayVcaoQFPyt/bTp4hTj4R6ngHN8wsGrQ4+h8frBx5HF859cmubS4mXlN0pVCcinr8eqHgXTWLnzupQ33wHL+w=="\n',
            ["medium"],
        ),
        # Erlang writes a setting as a tagged tuple; elsewhere "{word, ..." is no assignment
        ("config/sys.config", '  {password, "Tq4Wn8Zr2Lm"},\n', ["medium"]),
        ("src/pool.js", '  {password, "Tq4Wn8Zr2Lm"},\n', []),
        # an AWS KMS ciphertext blob; a Datadog client token is made for browsers; prose that
        # names a public key
        (
            "secrets.enc.yaml",
            "signing_secret: AQICAHx1NmjzklCPaVekFaVPzeQ8SB+Ds81VqOh1qf0bFoVlqMBKPeZqIk9reoysyp69kITqesZOQ7nfxra/+VxJrw3NsYIdKNNhrXANeDwCWfM5+upgGoc1aSm7eVyqw4oUCpv3amFLF8Dgkxmor5xBQFHwp58X0boBQZ\n",
            [],
        ),
        ("src/rum.ts", "  clientToken: 'puba59a295a07c8a3691b50bbeccbeaa66f',\n", []),
        (
            "docs/peers.md",
            "Server public key: `zQ0cGyH9fwS8EvKLVwyvmSf2synv1TyO8Td2+WgXnpQ=`\n",
            [],
        ),
        (
            "docs/peers.md",
            "Server private key: `zQ0cGyH9fwS8EvKLVwyvmSf2synv1TyO8Td2+WgXnpQ=`\n",
            ["medium"],
        ),
        # MuleSoft secure properties hold ciphertext as ![...], decrypted when the app starts
        (
            "src/main/resources/config/prod.yaml",
            'password: "![S3mNawSpCr5hcHOiePl4MlUKnTW3+mg3cMTe76YPh2m1YWD0=]"\n',
            [],
        ),
        # "replace with ..." in Vietnamese, and what to generate described in Spanish
        ("README.md", "CREATE USER 'app'@'localhost' IDENTIFIED BY 'THAY_BANG_MAT_KHAU';\n", []),
        ("README.md", "JWT_SECRET=generar_con_openssl_rand_hex_64\n", []),
        ("README.md", "APP_SECRET=cadena_aleatoria_de_32_caracteres\n", []),
        # the same languages' words in a value that is no slot stay a password
        ("docs/MQTT.md", "MQTT_PASSWORD=dinamo2019\n", ["medium"]),
        ("README.md", "DB_PASSWORD=Tuatara_2031\n", ["medium"]),
        ("inventory/hosts", "web1 ansible_user=root ansible_password=unsafe_password\n", []),
        # a network's SSID is its name; a password named after the SSID is its password
        ("src/wifi.py", 'ssid_password: str = "Kq8$Wm3Zt9"\n', ["medium"]),
        ("firmware/arduino_secrets.h", '#define SECRET_SSID "HarborNet-5G"\n', []),
        # Jenkins' credentials('id') looks a credential up by its id
        ("ci/Jenkinsfile", "    P4PASSWD = credentials('p4-build01')\n", []),
        # prose about the future states a password as well as prose about the past
        ("docs/onboarding.md", "Your initial password will be `Orchard2031`.\n", ["medium"]),
    ],
)
def test_weak_password_tiers(tmp_path: Path, path: str, text: str, expected: list[str]) -> None:
    """A weak password is medium where the context is unambiguous, low in tests and for
    fixture words or weaker shapes."""
    assert _tiers(ScanConfig.load(tmp_path), path, text) == expected
