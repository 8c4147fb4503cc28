"""Build the labelled development corpus: real code with planted secrets and hard negatives.

Three kinds of material, so a scanner cannot be tuned to one generator:

* real source files copied from the installed packages (site-packages of the
  running interpreter): every line of them is presumed clean, so any finding
  there is a false positive;
* planted lines inserted at random places in those real files, written in the
  file's own language (Python, JS, Go, YAML, JSON...);
* small synthetic project files (.env, docker-compose, Kubernetes, Terraform,
  Maven settings, web.config, shell, SQL, Dockerfile, docs) that mix planted
  positives, hard negatives and filler.

Positives cover token formats (with valid checksums), private keys, JWTs,
connection URIs, strong and weak human passwords and generic API keys.
Negatives are what trips scanners: placeholders, environment and template
references, secretsd:// references, ansible-vault blocks, example keys,
bad-checksum tokens, hashes, UUIDs, public keys, field names, messages.

Output: ``<out>/files/...`` and ``<out>/labels.json`` (one entry per planted
item: path, first and last line, positive or not, kind).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from values import Gen

TEXT_EXT = {
    ".py",
    ".js",
    ".ts",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".cfg",
    ".ini",
    ".md",
    ".rst",
    ".txt",
    ".go",
    ".java",
    ".rb",
    ".php",
    ".sh",
    ".xml",
    ".html",
    ".c",
    ".h",
    ".pyi",
}


@dataclass
class Planted:
    lines: list[str]
    positive: bool
    kind: str


# ----------------------------------------------------------------- positives


def _token_values(g: Gen) -> list[tuple[str, Callable[[], str], list[str]]]:
    """(kind, factory, variable names) for format-specific tokens."""
    return [
        ("github", g.github, ["GITHUB_TOKEN", "gh_token", "GH_PAT", "github_access_token"]),
        ("npm", g.npm, ["NPM_TOKEN", "npm_auth_token"]),
        ("aws-id", g.aws_id, ["AWS_ACCESS_KEY_ID", "aws_access_key_id", "accessKeyId"]),
        ("aws-secret", g.aws_secret, ["AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"]),
        ("gitlab", g.gitlab, ["GITLAB_TOKEN", "gitlab_private_token", "CI_JOB_TOKEN_RW"]),
        ("slack", g.slack, ["SLACK_BOT_TOKEN", "slack_token", "slackToken"]),
        ("slack-webhook", g.slack_webhook, ["SLACK_WEBHOOK_URL", "webhook_url", "slack_hook"]),
        ("discord-webhook", g.discord_webhook, ["DISCORD_WEBHOOK", "discord_url"]),
        ("stripe", g.stripe, ["STRIPE_SECRET_KEY", "stripe.api_key", "stripeKey"]),
        ("sendgrid", g.sendgrid, ["SENDGRID_API_KEY", "sendgrid_key"]),
        ("google", g.google, ["GOOGLE_API_KEY", "maps_api_key", "firebaseApiKey"]),
        ("twilio", g.twilio, ["TWILIO_API_KEY", "twilio_key_sid"]),
        ("mailgun", g.mailgun, ["MAILGUN_API_KEY", "mailgun_key"]),
        ("shopify", g.shopify, ["SHOPIFY_ACCESS_TOKEN", "shopify_token"]),
        ("databricks", g.databricks, ["DATABRICKS_TOKEN", "dbx_token"]),
        ("digitalocean", g.digitalocean, ["DO_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"]),
        ("huggingface", g.huggingface, ["HF_TOKEN", "hugging_face_token"]),
        ("openai", g.openai, ["OPENAI_API_KEY", "openai.api_key"]),
        ("anthropic", g.anthropic, ["ANTHROPIC_API_KEY", "claude_key"]),
        ("vault", g.vault, ["VAULT_TOKEN", "vault_token"]),
        ("telegram", g.telegram, ["TELEGRAM_BOT_TOKEN", "bot_token"]),
        ("pypi", g.pypi, ["TWINE_PASSWORD", "pypi_token"]),
        ("jwt", g.jwt, ["SERVICE_JWT", "auth_token", "jwt"]),
        (
            "api-key",
            g.api_key,
            [
                "API_KEY",
                "api_key",
                "apiKey",
                "x_api_key",
                "secret_key",
                "SECRET_KEY",
                "client_secret",
                "access_token",
                "auth_token",
                "app_secret",
                "ENCRYPTION_KEY",
                "signing_key",
            ],
        ),
    ]


# The jwt.io documentation token: published everywhere, not a secret.
JWT_IO_EXAMPLE = (
    'jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gR'
    'G9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"'
)
BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
PASSWORD_NAMES = [
    "password",
    "db_password",
    "DB_PASSWORD",
    "passwd",
    "pwd",
    "admin_password",
    "MYSQL_ROOT_PASSWORD",
    "smtp_password",
    "dbPassword",
    "rootPass",
    "mail_pass",
    "POSTGRES_PASSWORD",
    "redis_password",
    "ldap_bind_password",
    "keystore_password",
    "PGPASSWORD",
    "userPassword",
    "password1",
    "DB_PASS",
]


def assignment(g: Gen, lang: str, name: str, value: str) -> str:
    """One assignment of ``value`` to ``name`` in the style of ``lang``."""
    forms = {
        ".py": [
            f'{name.replace(".", "_")} = "{value}"',
            f"{name.replace('.', '_')} = '{value}'",
            f'    "{name}": "{value}",',
            f'client = connect(user="svc", {name.split(".")[-1].lower()}="{value}")',
            f'os.environ.setdefault("{name.upper().replace(".", "_")}", "{value}")',
        ],
        ".js": [
            f'const {name.replace(".", "_")} = "{value}";',
            f"  {name.split('.')[-1]}: '{value}',",
            f'process.env.{name.upper().replace(".", "_")} = "{value}";',
        ],
        ".ts": [f'export const {name.replace(".", "_")}: string = "{value}";'],
        ".go": [
            f'\t{name.replace(".", "_").title().replace("_", "")} = "{value}"',
            f'\tcfg.{name.split(".")[-1].title()} = "{value}"',
        ],
        ".java": [
            f'    private static final String {name.upper().replace(".", "_")} = "{value}";',
            f'        props.setProperty("{name.lower()}", "{value}");',
        ],
        ".rb": [
            f"  {name.split('.')[-1].lower()}: '{value}',",
            f'{name.upper().replace(".", "_")} = "{value}"',
        ],
        ".php": [
            f"    '{name.lower()}' => '{value}',",
            f"define('{name.upper().replace('.', '_')}', '{value}');",
        ],
        ".json": [f'  "{name}": "{value}",'],
        ".yaml": [
            f"  {name.lower()}: {value}",
            f'  {name}: "{value}"',
            f"      - {name.upper().replace('.', '_')}={value}",
        ],
        ".yml": [f"    {name.lower()}: '{value}'"],
        ".toml": [f'{name.lower().replace(".", "_")} = "{value}"'],
        ".ini": [f"{name.lower()} = {value}"],
        ".cfg": [f"{name.lower()} = {value}"],
        ".properties": [f"app.{name.lower()}={value}"],
        ".env": [
            f"{name.upper().replace('.', '_')}={value}",
            f'{name.upper().replace(".", "_")}="{value}"',
        ],
        ".sh": [
            f"export {name.upper().replace('.', '_')}={value}",
            f'export {name.upper().replace(".", "_")}="{value}"',
        ],
        ".xml": [
            f"    <{name.split('.')[-1]}>{value}</{name.split('.')[-1]}>",
            f'    <add key="{name}" value="{value}" />',
        ],
        ".tf": [f'  {name.lower().replace(".", "_")} = "{value}"'],
        ".md": [f"    {name.upper().replace('.', '_')}={value}", f'`{name} = "{value}"`'],
        ".cs": [f'        public const string {name.replace(".", "").title()} = "{value}";'],
        ".kt": [f'    val {name.replace(".", "_")} = "{value}"'],
        "Dockerfile": [f"ENV {name.upper().replace('.', '_')}={value}"],
    }
    return g.pick(forms.get(lang, forms[".py"]))


def uri(g: Gen, password: str) -> str:
    scheme, port = g.pick(
        [
            ("postgresql", 5432),
            ("postgres", 5432),
            ("mysql", 3306),
            ("mongodb+srv", 0),
            ("redis", 6379),
            ("amqp", 5672),
            ("mssql", 1433),
            ("ftp", 21),
            ("smtp", 587),
            ("https", 443),
            ("mongodb", 27017),
            ("rediss", 6380),
        ]
    )
    user = g.pick(["app", "admin", "svc_api", "deploy", "root", "etl", "reporting", "default"])
    host = g.pick(
        [
            "db.internal",
            "10.0.3.17",
            "prod-db-1.cluster-abc.eu-west-1.rds.amazonaws.com",
            "cache",
            "mq.corp.local",
            "cluster0.x1y2z.mongodb.net",
            "mail.acme.io",
            "ci.acme.dev",
        ]
    )
    host_port = host if not port else f"{host}:{port}"
    database = g.pick(["app", "prod", "0", "vhost", "reports"])
    return f"{scheme}://{user}:{password}@{host_port}/{database}"


def positive(g: Gen, lang: str) -> Planted:
    roll = g.r.random()
    if roll < 0.06:
        return Planted(g.private_key(), True, "private-key")
    if roll < 0.40:
        kind, factory, names = g.pick(_token_values(g))
        value = factory()
        if kind in ("slack-webhook", "discord-webhook", "jwt") and g.r.random() < 0.3:
            return Planted(
                [
                    f"# {kind}: {value}"
                    if lang in (".py", ".sh", ".yaml", ".env")
                    else f"// {value}"
                ],
                True,
                kind,
            )
        return Planted([assignment(g, lang, g.pick(names), value)], True, kind)
    if roll < 0.55:
        pw = g.password().replace("@", "!").replace("/", "9").replace(":", "8")
        text = uri(g, pw)
        line = g.pick(
            [
                assignment(
                    g,
                    lang,
                    g.pick(
                        [
                            "DATABASE_URL",
                            "db_url",
                            "broker_url",
                            "REDIS_URL",
                            "connection_string",
                            "SQLALCHEMY_DATABASE_URI",
                        ]
                    ),
                    text,
                ),
                f"# connect with {text}" if lang != ".json" else f'  "dsn": "{text}",',
            ]
        )
        return Planted([line], True, "uri")
    if roll < 0.58:
        return Planted(
            [assignment(g, lang, "AZURE_STORAGE_CONNECTION_STRING", g.azure_conn())], True, "azure"
        )
    if roll < 0.62:
        pw = g.password().replace(";", "!").replace('"', "#")
        return Planted(
            [
                assignment(
                    g,
                    lang,
                    "ConnectionString",
                    f"Server=sql01;Database=Orders;User Id=orders_app;Password={pw};",
                )
            ],
            True,
            "conn-string",
        )
    if roll < 0.66:
        pw = g.password().replace("'", "!")
        line = g.pick(
            [
                f"mysql -u root -p'{pw}' -h db.internal app < dump.sql",
                f"curl -u deploy:{pw} https://nexus.internal/repository/",
                f"docker login -u ci --password {pw} registry.internal",
                f"sshpass -p '{pw}' ssh deploy@10.0.0.5",
                f"CREATE USER reporting IDENTIFIED BY '{pw}';",
                f'headers = {{"Authorization": "Bearer {g.s(40, "abcdefABCDEF0123456789")}"}}',
            ]
        )
        return Planted([line], True, "cli")
    value = g.password().replace('"', "!").replace("'", "!").replace("\\", "!")
    return Planted([assignment(g, lang, g.pick(PASSWORD_NAMES), value)], True, "password")


# ----------------------------------------------------------------- hard negatives


def negative(g: Gen, lang: str) -> Planted:
    name = g.pick(
        [*PASSWORD_NAMES, "api_key", "SECRET_KEY", "auth_token", "client_secret", "GITHUB_TOKEN"]
    )
    upper = name.upper().replace(".", "_")
    placeholder = g.pick(
        [
            "<password>",
            "<your-password>",
            "your-password-here",
            "YOUR_API_KEY",
            "changeme",
            "xxxxxxxx",
            "********",
            "REPLACE_ME",
            "TODO",
            "example",
            "dummy",
            "<redacted>",
            "${" + upper + "}",
            "{{ " + name.lower() + " }}",
            "%(" + name.lower() + ")s",
            "$" + upper,
            "{" + name.lower() + "}",
            "secretsd://apps/web/db#password",
            "secretsd://ci/github?version=3#token",
            "${env:" + upper + "}",
            "{{ .Values." + name.lower() + " }}",
            "${{ secrets." + upper + " }}",
            "<%= ENV['" + upper + "'] %>",
            "password",
            "secret",
            "none",
            "null",
            "...",
            "your_token_here",
            "insert-key-here",
        ]
    )
    roll = g.r.random()
    if roll < 0.35:
        return Planted([assignment(g, lang, name, placeholder)], False, "placeholder")
    if roll < 0.45:
        line = g.pick(
            [
                f'{name} = os.environ["{upper}"]',
                f"{name} = os.getenv('{upper}')",
                f"const {name} = process.env.{upper};",
                f'{name} = ENV.fetch("{upper}")',
                f'String {name} = System.getenv("{upper}");',
                f"{name} = getpass.getpass()",
                f'{name} = config.get("{name}")',
                f"{name} = settings.{upper}",
                f"{name} = vault.read('secret/app')['{name}']",
                f"self.{name} = {name}",
                f"{name}: ${{{{ secrets.{upper} }}}}",
                f"{name} = keyring.get_password('app', user)",
            ]
        )
        return Planted([line], False, "reference")
    if roll < 0.50:
        return Planted(
            [
                f"{name}: !vault |",
                "  $ANSIBLE_VAULT;1.1;AES256",
                *[f"  {g.s(64, '0123456789abcdef')}" for _ in range(4)],
            ],
            False,
            "ansible-vault",
        )
    if roll < 0.60:
        line = g.pick(
            [
                'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"',
                'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
                f'GITHUB_TOKEN = "{g.bad_github()}"',
                f"token: {g.bad_github()}",
                JWT_IO_EXAMPLE,
                'stripe_key = "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"',
                "slack: xoxb-000000000000-0000000000000-XXXXXXXXXXXXXXXXXXXXXXXX",
                "postgres://user:password@localhost:5432/mydb",
                "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
                'api_key = "AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"',
                "# example: password = 'hunter2' (never do this)",
                f'fake_token = "{g.s(32)}"',
                f'dummy_password = "{g.s(12)}"',
                f'EXAMPLE_API_KEY = "{g.hex_key()}"',
            ]
        )
        return Planted([line], False, "example")
    if roll < 0.75:
        line = g.pick(
            [
                f'sha256 = "{g.sha()}"',
                f'checksum: "{g.sha("md5")}"',
                f'commit_sha = "{g.sha("sha1")}"',
                f'etag = "{g.sha("md5")}"',
                f'request_id = "{g.uuid()}"',
                f'tenant_id: "{g.uuid()}"',
                f'client_id = "{g.uuid()}"',
                f'"integrity": "sha512-{g.b64_key()}{g.b64_key()}"',
                f'password_hash = "$2b$12${g.s(53, BCRYPT_ALPHABET)}"',
                f'key_fingerprint = "{g.sha("sha1")}"',
                f'salt = "{g.hex_key()}"',
                f'api_key_id = "{g.uuid()}"',
                f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{g.s(43)} deploy@ci",
                f'image: "registry/app@sha256:{g.sha()}"',
                f'token_id = "{g.uuid()}"',
                f'"resolved": "https://registry.npmjs.org/x/-/x-1.0.{g.r.randint(0, 9)}.tgz"',
            ]
        )
        return Planted([line], False, "hash-uuid")
    if roll < 0.82:
        return Planted(
            [
                "-----BEGIN CERTIFICATE-----",
                *[
                    g.s(64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                    for _ in range(3)
                ],
                "-----END CERTIFICATE-----",
            ]
            if g.r.random() < 0.5
            else [
                "-----BEGIN PUBLIC KEY-----",
                *[
                    g.s(64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                    for _ in range(3)
                ],
                "-----END PUBLIC KEY-----",
            ],
            False,
            "public",
        )
    line = g.pick(
        [
            'PASSWORD_FIELD = "password"',
            "PASSWORD_MIN_LENGTH = 12",
            'token_type = "Bearer"',
            '"password": "********",',
            "password = None",
            'password: ""',
            'label = "Enter your password"',
            'raise AuthError("Invalid password or token")',
            'password_reset_url = "/accounts/password/reset/"',
            'TOKEN_ENDPOINT = "https://login.microsoftonline.com/common/oauth2/v2.0/token"',
            'secret_name = "prod/db/credentials"',
            'api_key_header = "X-API-Key"',
            'auth_type = "basic"',
            "if not password: return False",
            'grant_type = "client_credentials"',
            'csrf_token = "{{ csrf_token }}"',
            'secret_key_path = "/run/secrets/app_key"',
            'password_validators = ["length", "common"]',
            "def get_token(self, refresh=False):",
            'token = tokenizer.encode("hello world")',
            'PASSWORD_REGEX = "^(?=.*[A-Z]).{8,}$"',
            '<input type="password" name="password" id="pw">',
        ]
    )
    return Planted([line], False, "identifier")


# ----------------------------------------------------------------- project files

PROJECT_FILES = [
    ("deploy/.env", ".env"),
    ("docker-compose.yml", ".yaml"),
    ("k8s/deployment.yaml", ".yaml"),
    ("infra/main.tf", ".tf"),
    ("settings.xml", ".xml"),
    ("web.config", ".xml"),
    ("scripts/deploy.sh", ".sh"),
    ("config/application.properties", ".properties"),
    ("config/app.ini", ".ini"),
    ("Dockerfile", "Dockerfile"),
    ("docs/setup.md", ".md"),
    ("src/config.js", ".js"),
    ("src/main.go", ".go"),
    ("src/App.java", ".java"),
    ("config/database.php", ".php"),
    ("config/secrets.rb", ".rb"),
    ("appsettings.json", ".json"),
    ("pyproject.toml", ".toml"),
    ("src/Settings.cs", ".cs"),
    ("src/Config.kt", ".kt"),
]
FILLER = {
    ".env": ["APP_ENV=production", "LOG_LEVEL=info", "PORT=8080", "FEATURE_X=true"],
    ".yaml": [
        "  replicas: 3",
        "  image: registry/app:1.4.2",
        "  - name: LOG_LEVEL",
        "    value: info",
    ],
    ".sh": ["set -euo pipefail", 'echo "deploying $APP"', "cd /srv/app", "systemctl restart app"],
    ".md": ["## Setup", "Run the following command:", "```", "```", "See the docs for details."],
}


def _lang(path: Path) -> str:
    return path.suffix if path.suffix else path.name


def build(
    out: Path,
    source: Path,
    *,
    seed: int = 7,
    target_bytes: int = 5_000_000,
    positives: int = 520,
    negatives: int = 520,
) -> dict[str, int]:
    """Write the corpus to ``out``; returns counts."""
    g = Gen(seed)
    files_dir = out / "files"
    if out.exists():
        shutil.rmtree(out)
    files_dir.mkdir(parents=True)
    candidates = sorted(
        p
        for p in source.rglob("*")
        if p.is_file()
        and p.suffix in TEXT_EXT
        and 2_000 < p.stat().st_size < 60_000
        and "credsweeper" not in p.parts
        and "detect_secrets" not in p.parts
        and "secretsd" not in str(p)
    )
    g.r.shuffle(candidates)
    docs: dict[str, list[str]] = {}
    total = 0
    for path in candidates:
        if total >= target_bytes:
            break
        try:
            text = path.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = "real/" + "/".join(path.relative_to(source).parts[-3:])
        docs[rel] = text.splitlines()
        total += len(text)
    for rel, lang in PROJECT_FILES:
        for copy in range(6):
            name = f"projects/p{copy}/{rel}"
            docs[name] = list(
                FILLER.get(
                    lang, FILLER[".env"] if lang in (".ini", ".properties") else ["# config"]
                )
            )
    names = sorted(docs)
    plants: dict[str, list[tuple[int, Planted]]] = {}
    for index in range(positives + negatives):
        name = g.pick(names)
        lang = _lang(Path(name))
        planted = positive(g, lang) if index < positives else negative(g, lang)
        position = g.r.randint(0, len(docs[name]))
        plants.setdefault(name, []).append((position, planted))
    labels = []
    for name in names:
        lines = docs[name]
        inserts = sorted(plants.get(name, []), key=lambda item: item[0])
        result: list[str] = []
        cursor = 0
        for position, planted in inserts:
            result.extend(lines[cursor:position])
            cursor = position
            first = len(result) + 1
            result.extend(planted.lines)
            labels.append(
                {
                    "path": name,
                    "first": first,
                    "last": len(result),
                    "positive": planted.positive,
                    "kind": planted.kind,
                }
            )
        result.extend(lines[cursor:])
        target = files_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(result) + "\n", "utf-8")
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    size = sum(p.stat().st_size for p in files_dir.rglob("*") if p.is_file())
    return {
        "files": len(names),
        "bytes": size,
        "positives": sum(1 for x in labels if x["positive"]),
        "negatives": sum(1 for x in labels if not x["positive"]),
    }


if __name__ == "__main__":
    import sysconfig

    here = Path(__file__).parent
    print(
        build(
            here / ".corpus" / "labelled",
            Path(sysconfig.get_paths()["purelib"]),
            seed=int(sys.argv[1]) if len(sys.argv) > 1 else 7,
        )
    )
