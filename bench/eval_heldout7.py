"""Seventh held-out part (``heldout7``): written blind, without reading the scanner or other parts.

The repositories of an open-source-heavy startup and its contractors: web apps (Django,
Rails, Laravel, Express/Nest, Spring Boot, ASP.NET Core, Go/Gin, Phoenix), mobile apps
(Android, iOS, Flutter, React Native), data pipelines (Airflow, dbt, Spark, notebooks),
infrastructure (Terraform, Pulumi, CDK, Helm, Kustomize, Ansible, Packer, Vagrant), CI/CD
(GitHub Actions, GitLab CI, Jenkins, CircleCI, Bitbucket, Azure DevOps, Drone), local dev
setup, docs and tests. Several values per file (``MULTI_SLOT``); every value of one template
has the template's kind and label. Look-alikes use the same shapes.
"""

# Turkish UI strings below use the dotless i on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import base64
import hashlib
import json
import string
import uuid

import evalset
from evalset import ALNUM, Template

MULTI_SLOT = True

HEX = "0123456789abcdef"
URLSAFE = ALNUM + "-_"


class Heldout7Values(evalset.Values):
    """Value generators of the heldout7 part: its own words and service users, and ``h7_``
    generators for every shape it plants."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "axolotl",
            "cardamom",
            "gondolier",
            "pangolin",
            "vermouth",
            "sextant",
            "quince",
            "nautilus",
            "persimmon",
        ]
        self.users = [
            "ledgerbot",
            "growth",
            "onboarding",
            "matcher",
            "pricing",
            "fleet",
            "stitch",
            "replica",
        ]
        self.hosts = [
            "pg-primary.internal",
            "10.20.4.17",
            "db-main.c9xk2mzq1w.eu-central-1.rds.amazonaws.com",
            "mysql-0.mysql.data.svc.cluster.local",
            "warehouse.prod.lan",
            "172.31.8.201",
        ]

    # -- positives ------------------------------------------------------------------
    def h7_word_pass(self) -> str:
        """A weak dictionary-word password, as committed in dev and test configs."""
        return self.pick(self.words) + self.pick(["", "1", "123", "2023", "!", "_local", "99"])

    def h7_cap_pass(self) -> str:
        return (
            self.pick(self.words).capitalize()
            + self.s(self.rng.randrange(2, 5), string.digits)
            + self.pick(["!", "#", "*", ""])
        )

    def h7_strong_pass(self) -> str:
        return self.s(self.rng.randrange(14, 26), ALNUM + "!#%*-_+=.")

    def h7_url_pass(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.pick(self.words) + self.s(3, string.digits)
        return self.s(self.rng.randrange(14, 28), ALNUM + "-_~")

    def h7_any_pass(self) -> str:
        return self.pick([self.h7_word_pass(), self.h7_cap_pass(), self.h7_strong_pass()])

    def h7_alnum_token(self) -> str:
        return self.s(self.rng.choice([24, 32, 40, 48]))

    def h7_hex40(self) -> str:
        return self.s(40, HEX)

    def h7_hex32(self) -> str:
        return self.s(32, HEX)

    def h7_hex64(self) -> str:
        return self.s(64, HEX)

    def h7_b64_32(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def h7_django_secret(self) -> str:
        if self.rng.randrange(2):
            return "django-insecure-" + self.s(
                50, string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)"
            )
        return self.s(50, string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)")

    def h7_rails_secret_base(self) -> str:
        return self.s(128, HEX)

    def h7_laravel_key(self) -> str:
        return "base64:" + self.h7_b64_32()

    def h7_phoenix_secret(self) -> str:
        return self.s(64, ALNUM + "+/")

    def h7_aspnet_conn_pass(self) -> str:
        return self.s(self.rng.randrange(12, 20), ALNUM + "!#%*-_")

    def h7_db_uri(self) -> str:
        scheme, port = self.pick(
            [("postgres", "5432"), ("postgresql", "5432"), ("mysql", "3306"), ("mariadb", "3306")]
        )
        user = self.pick(self.users)
        return f"{scheme}://{user}:{self.h7_url_pass()}@{self.pick(self.hosts)}:{port}/{user}_prod"

    def h7_broker_uri(self) -> str:
        user = self.pick(self.users)
        host = self.pick(["rabbitmq.infra.svc", "mq-1.internal", "10.20.9.3"])
        if self.rng.randrange(2):
            return f"amqp://{user}:{self.h7_url_pass()}@{host}:5672/{user}"
        return f"redis://:{self.h7_url_pass()}@{self.pick(['redis-master.cache.svc', 'cache.prod.lan'])}:6379/0"

    def h7_mongo_srv(self) -> str:
        cluster = self.s(5, string.ascii_lowercase + string.digits)
        return (
            f"mongodb+srv://{self.pick(self.users)}:{self.h7_url_pass()}"
            f"@cluster0.{cluster}.mongodb.net/app?retryWrites=true&w=majority"
        )

    def h7_aws_csv_row(self) -> str:
        """The last line of the credentials CSV the AWS console offers for download."""
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        return f"{self.pick(self.users)}-ci,,{key_id},{self.s(40, ALNUM + '/+')}"

    def h7_aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    def h7_aws_pair(self) -> str:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        return f"{key_id}:{self.s(40, ALNUM + '/+')}"

    def h7_github(self) -> str:
        return self.github(self.pick(["ghp", "gho", "ghs", "ghu"]))

    def h7_npm(self) -> str:
        return self.npm()

    def h7_gitlab(self) -> str:
        return self.pick(["glpat-", "gldt-", "glrt-"]) + self.s(20, ALNUM + "_-")

    def h7_slack_bot(self) -> str:
        return self.slack()

    def h7_webhook(self) -> str:
        kind = self.rng.randrange(4)
        if kind == 0:
            return self.slack_webhook()
        if kind == 1:
            return self.discord_webhook()
        if kind == 2:
            space = "AAAA" + self.s(7, URLSAFE)
            return (
                f"https://chat.googleapis.com/v1/spaces/{space}/messages"
                f"?key=AIza{self.s(35, URLSAFE)}&token={self.s(43, URLSAFE)}%3D"
            )
        return self.teams_webhook()

    def h7_b64_pem(self) -> str:
        """A kubeconfig ``client-key-data``: a PEM private key, base64-encoded once more."""
        return base64.b64encode(self.pem("RSA PRIVATE KEY", 6).encode()).decode()

    def h7_b64_stripe(self) -> str:
        """A Stripe secret key as a Kubernetes Secret's ``data`` holds it: base64-encoded."""
        return base64.b64encode(
            self.pick([self.stripe(), self.stripe_restricted()]).encode()
        ).decode()

    def h7_pem(self) -> str:
        return self.pick(
            [
                self.pem("RSA PRIVATE KEY", 10),
                self.pem("PRIVATE KEY", 9),
                self.pem("EC PRIVATE KEY", 3),
                self.pem("OPENSSH PRIVATE KEY", 7),
            ]
        )

    def h7_gcp_key(self) -> str:
        return self.gcp_private_key()

    def h7_supabase_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .decode()
                .rstrip("=")
            )

        header = part({"alg": "HS256", "typ": "JWT"})
        ref = self.s(20, string.ascii_lowercase)
        iat = 1690000000 + self.rng.randrange(10**7)
        payload = part(
            {
                "iss": "supabase",
                "ref": ref,
                "role": "service_role",
                "iat": iat,
                "exp": iat + 315360000,
            }
        )
        sig = base64.urlsafe_b64encode(self.rng.randbytes(32)).decode().rstrip("=")
        return f"{header}.{payload}.{sig}"

    def h7_jwt(self) -> str:
        return self.pick([self.jwt(), self.h7_supabase_jwt()])

    def h7_basic(self) -> str:
        return base64.b64encode(f"{self.pick(self.users)}:{self.h7_any_pass()}".encode()).decode()

    def h7_stripe(self) -> str:
        return self.pick([self.stripe(), self.stripe_restricted(), self.stripe_whsec()])

    def h7_fcm_server_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h7_mapbox_sk(self) -> str:
        body = (
            base64.urlsafe_b64encode(
                json.dumps(
                    {
                        "u": self.pick(self.users),
                        "a": self.s(25, string.ascii_lowercase + string.digits),
                    },
                    separators=(",", ":"),
                ).encode()
            )
            .decode()
            .rstrip("=")
        )
        return f"sk.{body}.{self.s(22, URLSAFE)}"

    def h7_saas_token(self) -> str:
        """Tokens of the SaaS tools a startup's CI talks to, with their vendor prefixes."""
        return self.pick(
            [
                "dckr_pat_" + self.s(27, URLSAFE),
                "pul-" + self.s(40, HEX),
                "squ_" + self.s(40, HEX),
                "NRAK-" + self.s(27, string.ascii_uppercase + string.digits),
                "dp.st.prd." + self.s(43, ALNUM),
                "lin_api_" + self.s(40, ALNUM),
                "CCIPAT_" + self.s(22, ALNUM) + "_" + self.s(40, HEX),
                "sntrys_" + self.s(60, ALNUM),
                "glc_" + self.s(48, ALNUM),
            ]
        )

    def h7_dockerhub_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h7_sentry_token(self) -> str:
        return self.pick(["sntrys_" + self.s(60, ALNUM), self.s(64, HEX)])

    def h7_circle_token(self) -> str:
        return self.pick(["CCIPAT_" + self.s(22, ALNUM) + "_" + self.s(40, HEX), self.s(40, HEX)])

    def h7_linear_key(self) -> str:
        return "lin_api_" + self.s(40, ALNUM)

    def h7_aws_example(self) -> str:
        return self.pick(["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"])

    def h7_datadog(self) -> str:
        return self.s(32, HEX)

    def h7_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def h7_ado_pat(self) -> str:
        return self.s(52, "abcdefghijklmnopqrstuvwxyz234567")

    def h7_app_specific(self) -> str:
        """An Apple app-specific password, as fastlane wants it."""
        return "-".join(self.s(4, string.ascii_lowercase) for _ in range(4))

    def h7_passphrase(self) -> str:
        return " ".join(self.pick(self.words) for _ in range(4))

    def h7_totp_seed(self) -> str:
        return self.s(32, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    def h7_azure_account_key(self) -> str:
        return base64.b64encode(self.rng.randbytes(64)).decode()

    def h7_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h7_pusher_secret(self) -> str:
        return self.s(20, HEX)

    def h7_vault(self) -> str:
        return self.pick(["hvs." + self.s(24), "s." + self.s(24)])

    def h7_openai(self) -> str:
        return self.pick([self.openai(), self.anthropic(), self.huggingface()])

    def h7_tfc(self) -> str:
        return self.tfc_token()

    def h7_snyk(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- look-alikes ----------------------------------------------------------------
    def h7_placeholder(self) -> str:
        return self.pick(
            [
                "<db-password>",
                "${POSTGRES_PASSWORD:?must be set}",
                "{{ .Env.API_KEY }}",
                "REPLACE_WITH_REAL_TOKEN",
                "__CHANGE_ME__",
                "changeme",
                "xxxxxxxxxxxxxxxxxxxx",
                "********",
                "<paste token here>",
                "TODO: ask ops",
                "${SECRET_KEY_BASE}",
                "{{ lookup('env', 'DB_PASS') }}",
                "your_api_key",
                "dummy",
            ]
        )

    def h7_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.NPM_TOKEN }}",
                "$(NPM_TOKEN)",
                "$CI_JOB_TOKEN",
                "${REGISTRY_PASSWORD}",
                "$BITBUCKET_REPO_PASSWORD",
                "${{ secrets.DOCKERHUB_TOKEN }}",
                "$(System.AccessToken)",
                "${env.SONAR_TOKEN}",
                "$DRONE_NETRC_PASSWORD",
                "$CIRCLE_TOKEN",
            ]
        )

    def h7_store_ref(self) -> str:
        acct = self.s(12, string.digits)
        return self.pick(
            [
                f"arn:aws:secretsmanager:eu-central-1:{acct}:secret:prod/{self.pick(self.users)}/db-{self.s(6)}",
                f"arn:aws:ssm:eu-central-1:{acct}:parameter/prod/{self.pick(self.users)}/api_key",
                f"projects/{self.pick(self.users)}-prod/secrets/db-password/versions/latest",
                f"op://Engineering/{self.pick(self.users)}-postgres/password",
                f"vault:secret/data/{self.pick(self.users)}#password",
                f"@Microsoft.KeyVault(SecretUri=https://kv-{self.pick(self.users)}.vault.azure.net/secrets/db-password/)",
                f"sm://{self.pick(self.users)}/api-token",
            ]
        )

    def h7_env_ref(self) -> str:
        return self.pick(
            [
                'ENV.fetch("DATABASE_PASSWORD")',
                "env('DB_PASSWORD')",
                'os.environ["SNOWFLAKE_PASSWORD"]',
                "process.env.STRIPE_SECRET_KEY",
                'System.getenv("JWT_SECRET")',
                'Environment.GetEnvironmentVariable("SQL_PASSWORD")',
                'os.Getenv("REDIS_PASSWORD")',
                'System.fetch_env!("SECRET_KEY_BASE")',
                "Variable.get('slack_token')",
                "\"{{ env_var('DBT_PASSWORD') }}\"",
            ]
        )

    def h7_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(16)).hexdigest()

    def h7_sha1(self) -> str:
        return hashlib.sha1(self.rng.randbytes(16)).hexdigest()

    def h7_docker_digest(self) -> str:
        return "sha256:" + self.h7_sha256()

    def h7_integrity(self) -> str:
        return "sha512-" + base64.b64encode(self.rng.randbytes(64)).decode()

    def h7_pw_hash(self) -> str:
        salt = self.s(22, ALNUM)
        return self.pick(
            [
                "$2a$10$" + self.s(53, ALNUM + "./"),
                f"pbkdf2_sha256$600000${salt}${base64.b64encode(self.rng.randbytes(32)).decode()}",
                f"$argon2id$v=19$m=65536,t=3,p=4${self.s(22, ALNUM + '+/')}${self.s(43, ALNUM + '+/')}",
                "$apr1$" + self.s(8, ALNUM + "./") + "$" + self.s(22, ALNUM + "./"),
            ]
        )

    def h7_public_pem(self) -> str:
        return self.pick([self.pem("PUBLIC KEY", 5), self.pem("CERTIFICATE", 14)])

    def h7_encrypted_pem(self) -> str:
        return self.pem("ENCRYPTED PRIVATE KEY", 10)

    def h7_ssh_pub(self) -> str:
        if self.rng.randrange(2):
            return self.ssh_public()
        body = base64.b64encode(
            b"\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x03\x01\x00\x01" + self.rng.randbytes(257)
        ).decode()
        return f"ssh-rsa {body} {self.pick(self.users)}@ci"

    def h7_ansible_vault(self) -> str:
        hexbody = self.s(64 * 6, HEX)
        rows = [hexbody[i : i + 80] for i in range(0, len(hexbody), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h7_sops(self) -> str:
        data = base64.b64encode(self.rng.randbytes(self.rng.randrange(12, 30))).decode()
        iv = base64.b64encode(self.rng.randbytes(32)).decode()
        tag = base64.b64encode(self.rng.randbytes(16)).decode()
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h7_sealed(self) -> str:
        return "AgB" + base64.b64encode(self.rng.randbytes(300)).decode()

    def h7_public_id(self) -> str:
        return self.pick(
            [
                "pk_live_" + self.s(24),
                "6L" + self.s(38, URLSAFE),
                f"1:{self.s(12, string.digits)}:web:{self.s(22, HEX)}",
                "G-" + self.s(10, string.ascii_uppercase + string.digits),
                self.google_client_id(),
                "pk.eyJ1IjoiZmxlZXQiLCJhIjoi" + self.s(30, URLSAFE) + "." + self.s(22, URLSAFE),
                "ca-app-pub-" + self.s(16, string.digits) + "~" + self.s(10, string.digits),
            ]
        )

    def h7_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h7_docs_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6Ik"
                "pvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "xoxb-not-a-real-token",
            ]
        )

    def h7_example_uri(self) -> str:
        scheme = self.pick(["postgres", "mysql", "amqp", "redis", "mongodb"])
        host = self.pick(
            [
                "db.example.com",
                "broker.example.org",
                "cache.test",
                "mongo.invalid",
                "localhost.example",
            ]
        )
        return f"{scheme}://{self.pick(['user', 'USER', 'app', 'username'])}:{self.pick(['password', 'PASSWORD', 'pass', 'secret', '<password>'])}@{host}/app"

    def h7_i18n(self) -> str:
        return self.pick(
            [
                "Wachtwoord vergeten?",
                "Lösenordet är för kort",
                "Şifreniz en az 8 karakter olmalıdır",
                "Mật khẩu không đúng",
                "Kata sandi salah",
                "Salasana on vanhentunut",
                "Heslo musí obsahovat číslici",
                "Forgot your password?",
                "Token de acceso inválido",
            ]
        )

    def h7_error_code(self) -> str:
        return self.pick(
            [
                "AUTH_" + self.s(3, string.digits),
                "E_TOKEN_EXPIRED",
                "ERR-PWD-" + self.s(2, string.digits),
                "invalid_client",
                "password_too_weak",
                self.s(5, string.digits),
            ]
        )

    def h7_empty(self) -> str:
        return ""

    def h7_rule(self) -> str:
        return self.pick(["12", "8", "16", "32", "64", "10"])

    def h7_path(self) -> str:
        return self.pick(
            [
                "/run/secrets/postgres_password",
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                "~/.config/gcloud/application_default_credentials.json",
                "./secrets/dev.key",
                "/etc/ssl/private/tls.key",
                "$HOME/.netrc",
            ]
        )

    def h7_git_sha(self) -> str:
        return self.s(40, HEX)

    def h7_fingerprint(self) -> str:
        if self.rng.randrange(2):
            return "SHA256:" + base64.b64encode(self.rng.randbytes(32)).decode().rstrip("=")
        return ":".join(self.s(2, "0123456789ABCDEF") for _ in range(20))

    def h7_name(self) -> str:
        """Names of secrets (not their values): k8s Secret names, CI variable names."""
        return self.pick(
            [
                "db-credentials",
                "stripe-api-key",
                "POSTGRES_PASSWORD",
                "registry-pull-secret",
                "NPM_TOKEN",
                "github-app-private-key",
                "sentry-auth-token",
            ]
        )


VALUES = Heldout7Values

TEMPLATES: list[Template] = [
    # ---- Django ----------------------------------------------------------------------
    (
        "backend/config/settings/local.py",
        """from .base import *  # noqa: F401,F403

DEBUG = True
SECRET_KEY = "{V}"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", ".ngrok-free.app"]

INTERNAL_IPS = ["127.0.0.1"]
INSTALLED_APPS += ["debug_toolbar", "django_extensions"]  # noqa: F405
""",
        "h7_django_secret",
        True,
    ),
    (
        "backend/config/settings/production.py",
        """import environ

from .base import *  # noqa: F401,F403

env = environ.Env()

DEBUG = False
SECRET_KEY = {V}
DATABASES = {"default": env.db("DATABASE_URL")}
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
""",
        "h7_env_ref",
        False,
    ),
    (
        "backend/apps/accounts/tests/test_login.py",
        """import pytest
from django.urls import reverse

from apps.accounts.models import User


PASSWORD = "{V}"


@pytest.mark.django_db
def test_login_redirects_to_dashboard(client):
    User.objects.create_user(email="ops@stitchlabs.io", password=PASSWORD)
    resp = client.post(reverse("login"), {"email": "ops@stitchlabs.io", "password": PASSWORD})
    assert resp.status_code == 302
""",
        "h7_word_pass",
        True,
    ),
    (
        "backend/apps/accounts/fixtures/users.json",
        """[
  {
    "model": "accounts.user",
    "pk": 1,
    "fields": {
      "email": "admin@stitchlabs.io",
      "password": "{V}",
      "is_superuser": true,
      "is_staff": true
    }
  },
  {
    "model": "accounts.user",
    "pk": 2,
    "fields": {
      "email": "support@stitchlabs.io",
      "password": "{V2}",
      "is_superuser": false,
      "is_staff": true
    }
  }
]
""",
        "h7_pw_hash",
        False,
    ),
    (
        "backend/apps/payments/management/commands/sync_stripe.py",
        """import stripe
from django.core.management.base import BaseCommand

# TODO(marta): move to settings before the demo
stripe.api_key = "{V}"


class Command(BaseCommand):
    help = "Pull products and prices from Stripe into the local catalogue"

    def handle(self, *args, **options):
        for product in stripe.Product.list(limit=100).auto_paging_iter():
            self.stdout.write(product.id)
""",
        "h7_stripe",
        True,
    ),
    (
        "backend/locale/nl/LC_MESSAGES/django.po",
        """#: apps/accounts/templates/accounts/login.html:42
msgid "Forgot your password?"
msgstr "{V}"

#: apps/accounts/forms.py:88
msgid "Password"
msgstr "Wachtwoord"
""",
        "h7_i18n",
        False,
    ),
    # ---- Rails -----------------------------------------------------------------------
    (
        "web/config/database.yml",
        """default: &default
  adapter: postgresql
  encoding: unicode
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

development:
  <<: *default
  database: marketplace_development
  username: marketplace
  password: {V}
  host: localhost

production:
  <<: *default
  database: marketplace_production
  username: marketplace
  password: <%= ENV["MARKETPLACE_DATABASE_PASSWORD"] %>
""",
        "h7_word_pass",
        True,
    ),
    (
        "web/config/master.key",
        """{V}""",
        "h7_hex32",
        True,
    ),
    (
        "web/config/credentials/staging.yml.example",
        """# Copy to staging.yml and run: bin/rails credentials:edit --environment staging
secret_key_base: {V}
aws:
  access_key_id: {V2}
  secret_access_key: {V3}
stripe:
  secret_key: {V4}
""",
        "h7_placeholder",
        False,
    ),
    (
        "web/config/initializers/sidekiq.rb",
        """Sidekiq.configure_server do |config|
  config.redis = { url: "{V}", network_timeout: 5 }
end

Sidekiq.configure_client do |config|
  config.redis = { url: "{V2}", network_timeout: 5 }
end
""",
        "h7_broker_uri",
        True,
    ),
    (
        "web/spec/support/omniauth.rb",
        """OmniAuth.config.test_mode = true

OmniAuth.config.mock_auth[:github] = OmniAuth::AuthHash.new(
  provider: "github",
  uid: "123545",
  info: { email: "dev@stitchlabs.io", nickname: "devbot" },
  credentials: { token: "{V}", expires: false }
)
""",
        "h7_docs_example",
        False,
    ),
    (
        "web/config/environments/production.rb",
        """Rails.application.configure do
  config.cache_classes = true
  config.eager_load = true
  config.secret_key_base = "{V}"
  config.force_ssl = true
  config.log_level = :info
  config.active_storage.service = :amazon
end
""",
        "h7_rails_secret_base",
        True,
    ),
    (
        "web/db/seeds.rb",
        """puts "Seeding admin users..."

AdminUser.find_or_create_by!(email: "founders@stitchlabs.io") do |u|
  u.password = u.password_confirmation = "{V}"
end

Plan.find_or_create_by!(slug: "starter") { |p| p.price_cents = 1900 }
""",
        "h7_cap_pass",
        True,
    ),
    # ---- Laravel ---------------------------------------------------------------------
    (
        "portal/.env",
        """APP_NAME=Portal
APP_ENV=local
APP_KEY={V}
APP_DEBUG=true
APP_URL=http://portal.test

LOG_CHANNEL=stack
DB_CONNECTION=mysql
DB_HOST=127.0.0.1
DB_PORT=3306
DB_DATABASE=portal
DB_USERNAME=portal
""",
        "h7_laravel_key",
        True,
    ),
    (
        "portal/.env.example",
        """APP_NAME=Portal
APP_ENV=local
APP_KEY=
APP_DEBUG=true

DB_CONNECTION=mysql
DB_HOST=127.0.0.1
DB_USERNAME=portal
DB_PASSWORD={V}

PUSHER_APP_ID=
PUSHER_APP_KEY=
PUSHER_APP_SECRET={V2}
""",
        "h7_empty",
        False,
    ),
    (
        "portal/.env.staging",
        """APP_ENV=staging
APP_DEBUG=false
DB_HOST=portal-staging.cluster-cq1x.eu-central-1.rds.amazonaws.com
DB_USERNAME=portal_app
DB_PASSWORD={V}

MAIL_MAILER=smtp
MAIL_HOST=smtp.postmarkapp.com
MAIL_USERNAME=portal-staging
MAIL_PASSWORD={V2}
""",
        "h7_strong_pass",
        True,
    ),
    (
        "portal/config/broadcasting.php",
        """<?php

return [
    'default' => env('BROADCAST_DRIVER', 'null'),

    'connections' => [
        'pusher' => [
            'driver' => 'pusher',
            'key' => '8c1f4e2b9a7d3c6e5f10',
            'secret' => '{V}',
            'app_id' => '1683342',
            'options' => ['cluster' => 'eu', 'useTLS' => true],
        ],
    ],
];
""",
        "h7_pusher_secret",
        True,
    ),
    (
        "portal/lang/tr/passwords.php",
        """<?php

return [
    'reset' => 'Şifreniz sıfırlandı.',
    'sent' => 'Şifre sıfırlama bağlantınızı e-posta ile gönderdik.',
    'throttled' => 'Lütfen tekrar denemeden önce bekleyin.',
    'token' => 'Bu şifre sıfırlama anahtarı geçersiz.',
    'password' => '{V}',
];
""",
        "h7_i18n",
        False,
    ),
    (
        "portal/tests/Feature/Auth/AuthenticationTest.php",
        """<?php

namespace Tests\\Feature\\Auth;

use App\\Models\\User;
use Tests\\TestCase;

class AuthenticationTest extends TestCase
{
    public function test_users_can_authenticate(): void
    {
        $password = '{V}';
        $user = User::factory()->create(['password' => bcrypt($password)]);

        $response = $this->post('/login', ['email' => $user->email, 'password' => $password]);

        $this->assertAuthenticated();
    }
}
""",
        "h7_word_pass",
        True,
    ),
    # ---- Express / Nest --------------------------------------------------------------
    (
        "api/src/config/configuration.ts",
        """export default () => ({
  port: parseInt(process.env.PORT ?? '3000', 10),
  database: {
    host: process.env.DB_HOST ?? 'localhost',
    password: process.env.DB_PASSWORD ?? '{V}',
  },
  jwt: {
    secret: process.env.JWT_SECRET ?? '{V2}',
    expiresIn: '15m',
  },
});
""",
        "h7_url_pass",
        True,
    ),
    (
        "api/src/auth/auth.module.ts",
        """import { Module } from '@nestjs/common';
import { JwtModule } from '@nestjs/jwt';
import { ConfigService } from '@nestjs/config';

@Module({
  imports: [
    JwtModule.registerAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        secret: config.get<string>('{V}'),
        signOptions: { expiresIn: '1h' },
      }),
    }),
  ],
})
export class AuthModule {}
""",
        "h7_name",
        False,
    ),
    (
        "api/src/mail/mailer.js",
        """const nodemailer = require('nodemailer');

const transport = nodemailer.createTransport({
  host: 'email-smtp.eu-central-1.amazonaws.com',
  port: 587,
  secure: false,
  auth: {
    user: process.env.SES_SMTP_USER,
    pass: '{V}',
  },
});

module.exports = { transport };
""",
        "h7_b64_32",
        True,
    ),
    (
        "api/test/e2e/auth.e2e-spec.ts",
        """import * as request from 'supertest';
import { app } from './setup';

describe('POST /auth/login', () => {
  it('rejects a wrong password', async () => {
    const res = await request(app.getHttpServer())
      .post('/auth/login')
      .send({ email: 'nobody@example.com', password: 'wrong' });
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('{V}');
  });
});
""",
        "h7_error_code",
        False,
    ),
    (
        "api/ormconfig.json",
        """{
  "type": "postgres",
  "url": "{V}",
  "synchronize": false,
  "logging": ["error"],
  "entities": ["dist/**/*.entity.js"],
  "migrations": ["dist/migrations/*.js"]
}
""",
        "h7_db_uri",
        True,
    ),
    (
        "api/src/integrations/openai.client.ts",
        """import OpenAI from 'openai';

// quick spike for the summarisation feature; key is from my personal account
export const openai = new OpenAI({
  apiKey: '{V}',
});
""",
        "h7_openai",
        True,
    ),
    # ---- Spring Boot -----------------------------------------------------------------
    (
        "services/billing/src/main/resources/application-dev.yml",
        """spring:
  datasource:
    url: jdbc:postgresql://localhost:5432/billing
    username: billing
    password: {V}
  jpa:
    hibernate:
      ddl-auto: validate
  rabbitmq:
    host: localhost
    username: billing
    password: {V2}
""",
        "h7_word_pass",
        True,
    ),
    (
        "services/billing/src/main/resources/application-prod.yml",
        """spring:
  datasource:
    url: jdbc:postgresql://${DB_HOST}:5432/billing
    username: ${DB_USER}
    password: {V}
  cloud:
    vault:
      kv:
        backend: secret
""",
        "h7_placeholder",
        False,
    ),
    (
        "services/notify/src/main/resources/application.properties",
        """server.port=8085
spring.application.name=notify
spring.mail.host=smtp.sendgrid.net
spring.mail.port=587
spring.mail.username=apikey
spring.mail.password=${SENDGRID_API_KEY}
notify.twilio.account-sid=AC3f1b2c4d5e6f708192a3b4c5d6e7f809
notify.twilio.auth-token={V}
""",
        "h7_twilio_token",
        True,
    ),
    (
        "services/notify/src/test/java/io/stitch/notify/JwtServiceTest.java",
        """package io.stitch.notify;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class JwtServiceTest {

    private static final String SAMPLE =
        "{V}";

    @Test
    void parsesSubjectFromSampleToken() {
        assertThat(new JwtService().subject(SAMPLE)).isEqualTo("1234567890");
    }
}
""",
        "h7_docs_example",
        False,
    ),
    (
        "services/gateway/src/main/resources/bootstrap.yml",
        """spring:
  application:
    name: gateway
  cloud:
    config:
      uri: http://config-server.platform.svc:8888
      username: gateway
      password: {V}
      fail-fast: true
""",
        "h7_strong_pass",
        True,
    ),
    # ---- ASP.NET Core ----------------------------------------------------------------
    (
        "src/Stitch.Api/appsettings.Development.json",
        """{
  "Logging": {
    "LogLevel": { "Default": "Information", "Microsoft.AspNetCore": "Warning" }
  },
  "ConnectionStrings": {
    "Default": "Server=localhost,1433;Database=Stitch;User Id=sa;Password={V};TrustServerCertificate=True"
  },
  "Jwt": {
    "Issuer": "stitch-api",
    "Key": "{V2}"
  }
}
""",
        "h7_aspnet_conn_pass",
        True,
    ),
    (
        "src/Stitch.Api/appsettings.Production.json",
        """{
  "ConnectionStrings": {
    "Default": "{V}"
  },
  "AzureAd": {
    "Instance": "https://login.microsoftonline.com/",
    "ClientId": "{V2}"
  }
}
""",
        "h7_store_ref",
        False,
    ),
    (
        "src/Stitch.Worker/appsettings.json",
        """{
  "Storage": {
    "ConnectionString": "DefaultEndpointsProtocol=https;AccountName=stitchuploads;AccountKey={V};EndpointSuffix=core.windows.net"
  },
  "ServiceBus": {
    "Queue": "invoices"
  }
}
""",
        "h7_azure_account_key",
        True,
    ),
    (
        "src/Stitch.Api/Properties/launchSettings.json",
        """{
  "profiles": {
    "Stitch.Api": {
      "commandName": "Project",
      "launchBrowser": true,
      "applicationUrl": "https://localhost:7141;http://localhost:5141",
      "environmentVariables": {
        "ASPNETCORE_ENVIRONMENT": "Development",
        "Stripe__SecretKey": "{V}"
      }
    }
  }
}
""",
        "h7_stripe",
        True,
    ),
    (
        "tests/Stitch.Api.Tests/Fixtures/TestUsers.cs",
        """namespace Stitch.Api.Tests.Fixtures;

public static class TestUsers
{
    public const string AdminEmail = "admin@stitch.test";
    public const string AdminPasswordHash = "{V}";
    public const int MinPasswordLength = 12;
}
""",
        "h7_pw_hash",
        False,
    ),
    # ---- Go / Gin --------------------------------------------------------------------
    (
        "gateway/internal/config/config.go",
        """package config

import "os"

type Config struct {
	DatabaseURL string
	RedisAddr   string
	JWTSecret   []byte
}

func Load() Config {
	return Config{
		DatabaseURL: getenv("DATABASE_URL", "{V}"),
		RedisAddr:   getenv("REDIS_ADDR", "localhost:6379"),
		JWTSecret:   []byte(os.Getenv("JWT_SECRET")),
	}
}
""",
        "h7_db_uri",
        True,
    ),
    (
        "gateway/internal/middleware/auth_test.go",
        """package middleware

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestBasicAuthRejectsUnknownUser(t *testing.T) {
	r := gin.New()
	r.Use(gin.BasicAuth(gin.Accounts{"ops": "{V}"}))
	w := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth("ops", "nope")
	r.ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("want 401, got %d", w.Code)
	}
}
""",
        "h7_word_pass",
        True,
    ),
    (
        "gateway/cmd/seed/main.go",
        """package main

import (
	"log"
	"os"
)

func main() {
	pass := {V}
	if pass == "" {
		log.Fatal("ADMIN_PASSWORD is required")
	}
	_ = os.Setenv("PGPASSWORD", pass)
}
""",
        "h7_env_ref",
        False,
    ),
    (
        "gateway/internal/webhooks/github.go",
        """package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// shared with the GitHub App "stitch-deployer" (Settings > Webhooks)
var webhookSecret = []byte("{V}")

func Verify(body []byte, sig string) bool {
	mac := hmac.New(sha256.New, webhookSecret)
	mac.Write(body)
	return hmac.Equal([]byte("sha256="+hex.EncodeToString(mac.Sum(nil))), []byte(sig))
}
""",
        "h7_alnum_token",
        True,
    ),
    (
        "gateway/go.sum",
        """github.com/gin-gonic/gin v1.9.1 h1:4idEAncQnU5cB7BeOkPtxjfCSye0AAm1R0RVIqJ+Jmg=
github.com/gin-gonic/gin v1.9.1/go.mod h1:hPrL7YrpYKXt5YId3A/Tnip5kqbEAP+KLuI3SUcPTeU=
github.com/golang-jwt/jwt/v5 v5.2.0 h1:{V}=
github.com/golang-jwt/jwt/v5 v5.2.0/go.mod h1:pqrtFR0X4osieyHYxtmOUWsAWrfe1Q5UVIyoH402zdk=
""",
        "h7_sha1",
        False,
    ),
    # ---- Phoenix ---------------------------------------------------------------------
    (
        "realtime/config/dev.exs",
        """import Config

config :realtime, RealtimeWeb.Endpoint,
  http: [ip: {127, 0, 0, 1}, port: 4000],
  check_origin: false,
  code_reloader: true,
  secret_key_base: "{V}",
  watchers: [esbuild: {Esbuild, :install_and_run, [:default, ~w(--watch)]}]
""",
        "h7_phoenix_secret",
        True,
    ),
    (
        "realtime/config/runtime.exs",
        """import Config

if config_env() == :prod do
  secret_key_base =
    {V} ||
      raise "environment variable SECRET_KEY_BASE is missing."

  config :realtime, RealtimeWeb.Endpoint, secret_key_base: secret_key_base
end
""",
        "h7_env_ref",
        False,
    ),
    (
        "realtime/config/test.exs",
        """import Config

config :realtime, Realtime.Repo,
  username: "realtime",
  password: "{V}",
  hostname: "localhost",
  database: "realtime_test#{System.get_env("MIX_TEST_PARTITION")}",
  pool: Ecto.Adapters.SQL.Sandbox
""",
        "h7_word_pass",
        True,
    ),
    # ---- Android ---------------------------------------------------------------------
    (
        "android/keystore.properties",
        """storeFile=../release/stitch-upload.jks
storePassword={V}
keyAlias=upload
keyPassword={V2}
""",
        "h7_cap_pass",
        True,
    ),
    (
        "android/app/build.gradle",
        """android {
    namespace "io.stitch.app"
    compileSdk 34

    signingConfigs {
        release {
            storeFile file(System.getenv("ANDROID_KEYSTORE_PATH") ?: "release.jks")
            storePassword System.getenv("ANDROID_STORE_PASSWORD") ?: "{V}"
            keyAlias "upload"
            keyPassword System.getenv("ANDROID_KEY_PASSWORD") ?: "{V2}"
        }
    }
}
""",
        "h7_placeholder",
        False,
    ),
    (
        "android/app/build.gradle.kts",
        """android {
    defaultConfig {
        applicationId = "io.stitch.fleet"
        minSdk = 26
        buildConfigField("String", "MAPBOX_DOWNLOADS_TOKEN", "\\"{V}\\"")
        buildConfigField("String", "API_BASE_URL", "\\"https://api.stitchlabs.io\\"")
    }
}
""",
        "h7_mapbox_sk",
        True,
    ),
    (
        "android/gradle.properties",
        """org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
android.useAndroidX=true
kotlin.code.style=official
# contractor artifactory (remove before open-sourcing!)
artifactoryUser=stitch-android
artifactoryPassword={V}
""",
        "h7_alnum_token",
        True,
    ),
    (
        "android/app/src/main/res/values/strings.xml",
        """<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">Stitch Fleet</string>
    <string name="google_maps_key" translatable="false">{V}</string>
    <string name="admob_app_id" translatable="false">{V2}</string>
    <string name="login_password_hint">Password</string>
</resources>
""",
        "h7_public_id",
        False,
    ),
    (
        "android/app/src/main/res/values-sv/strings.xml",
        """<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="login_password_hint">Lösenord</string>
    <string name="error_password_short">{V}</string>
    <string name="error_token_invalid">{V2}</string>
</resources>
""",
        "h7_i18n",
        False,
    ),
    (
        "android/app/src/main/java/io/stitch/fleet/push/FcmSender.kt",
        """package io.stitch.fleet.push

import okhttp3.OkHttpClient
import okhttp3.Request

// legacy HTTP API, only used by the debug "send test push" screen
private const val SERVER_KEY = "{V}"

fun testPushRequest(body: okhttp3.RequestBody): Request =
    Request.Builder()
        .url("https://fcm.googleapis.com/fcm/send")
        .header("Authorization", "key=$SERVER_KEY")
        .post(body)
        .build()
""",
        "h7_fcm_server_key",
        True,
    ),
    # ---- iOS -------------------------------------------------------------------------
    (
        "ios/fastlane/Fastfile",
        """default_platform(:ios)

platform :ios do
  lane :beta do
    ENV["FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD"] = "{V}"
    match(type: "appstore", readonly: true)
    build_app(scheme: "Stitch")
    upload_to_testflight(skip_waiting_for_build_processing: true)
  end
end
""",
        "h7_app_specific",
        True,
    ),
    (
        "ios/fastlane/Matchfile",
        """git_url("git@github.com:stitchlabs/ios-certificates.git")
storage_mode("git")
type("appstore")
app_identifier(["io.stitch.app", "io.stitch.app.widget"])
username("mobile@stitchlabs.io")
# match decrypts the certificates repo with this
ENV["MATCH_PASSWORD"] = "{V}"
""",
        "h7_passphrase",
        True,
    ),
    (
        "ios/fastlane/.env.default",
        """FASTLANE_USER=mobile@stitchlabs.io
FASTLANE_TEAM_ID=8QZ4M2K7XR
MATCH_PASSWORD={V}
FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD={V2}
""",
        "h7_ci_ref",
        False,
    ),
    (
        "ios/Stitch/Config/Secrets.xcconfig",
        """// Not checked in normally. See README > iOS setup.
API_HOST = api.stitchlabs.io
SENTRY_AUTH_TOKEN = {V}
""",
        "h7_sentry_token",
        True,
    ),
    (
        "ios/Stitch/Resources/GoogleService-Info.plist",
        """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CLIENT_ID</key>
	<string>{V}</string>
	<key>BUNDLE_ID</key>
	<string>io.stitch.app</string>
	<key>GOOGLE_APP_ID</key>
	<string>{V2}</string>
</dict>
</plist>
""",
        "h7_public_id",
        False,
    ),
    (
        "ios/StitchTests/Stubs/AuthStubs.swift",
        """import Foundation
@testable import Stitch

enum AuthStubs {
    static let refreshTokenResponse = \"\"\"
    {"access_token": "\\(UUID().uuidString)", "expires_in": 3600, "error": "{V}"}
    \"\"\"
}
""",
        "h7_error_code",
        False,
    ),
    (
        "ios/Stitch/Networking/APIClient.swift",
        """import Foundation

final class APIClient {
    static let shared = APIClient()
    private let base = URL(string: "https://api.stitchlabs.io/v2")!
    // staging basic auth in front of the API (nginx)
    private let stagingAuth = "Basic {V}"

    func request(_ path: String) -> URLRequest {
        var req = URLRequest(url: base.appendingPathComponent(path))
        req.setValue(stagingAuth, forHTTPHeaderField: "Authorization")
        return req
    }
}
""",
        "h7_basic",
        True,
    ),
    # ---- Flutter ---------------------------------------------------------------------
    (
        "mobile_flutter/lib/env/env.dart",
        """import 'package:envied/envied.dart';

part 'env.g.dart';

@Envied(path: '.env')
abstract class Env {
  @EnviedField(varName: 'SUPABASE_URL')
  static const String supabaseUrl = _Env.supabaseUrl;
  @EnviedField(varName: 'SUPABASE_SERVICE_KEY', obfuscate: true)
  static final String supabaseServiceKey = _Env.supabaseServiceKey;
}
// key used while prototyping: {V}
""",
        "h7_supabase_jwt",
        True,
    ),
    (
        "mobile_flutter/lib/l10n/app_id.arb",
        """{
  "@@locale": "id",
  "loginTitle": "Masuk",
  "passwordLabel": "Kata sandi",
  "passwordWrong": "{V}",
  "@passwordWrong": {
    "description": "Shown when the password does not match"
  }
}
""",
        "h7_i18n",
        False,
    ),
    (
        "mobile_flutter/android/key.properties",
        """storePassword={V}
keyPassword={V2}
keyAlias=upload
storeFile=/Users/jonas/keys/upload-keystore.jks
""",
        "h7_word_pass",
        True,
    ),
    (
        "mobile_flutter/test/api_client_test.dart",
        """import 'package:flutter_test/flutter_test.dart';
import 'package:stitch/api/client.dart';

void main() {
  test('adds bearer header', () {
    final client = ApiClient(token: '{V}');
    expect(client.headers['Authorization'], startsWith('Bearer '));
  });
}
""",
        "h7_placeholder",
        False,
    ),
    (
        "mobile_flutter/pubspec.lock",
        """packages:
  http:
    dependency: "direct main"
    description:
      name: http
      sha256: "{V}"
      url: "https://pub.dev"
    source: hosted
    version: "1.2.1"
""",
        "h7_sha256",
        False,
    ),
    # ---- React Native ----------------------------------------------------------------
    (
        "app-rn/.env.production",
        """API_URL=https://api.stitchlabs.io
SENTRY_DSN=https://4f2a9b@o450231.ingest.sentry.io/5523001
CODEPUSH_KEY_ANDROID={V}
CODEPUSH_KEY_IOS={V2}
""",
        "h7_alnum_token",
        True,
    ),
    (
        "app-rn/src/config/index.ts",
        """export const config = {
  apiUrl: 'https://api.stitchlabs.io',
  stripePublishableKey: '{V}',
  recaptchaSiteKey: '{V2}',
};
""",
        "h7_public_id",
        False,
    ),
    (
        "app-rn/eas.json",
        """{
  "cli": { "version": ">= 5.2.0" },
  "build": {
    "production": {
      "env": { "APP_VARIANT": "production" }
    }
  },
  "submit": {
    "production": {
      "ios": {
        "appleId": "mobile@stitchlabs.io",
        "ascAppId": "6449012235",
        "appleTeamId": "8QZ4M2K7XR"
      }
    }
  }
}
""",
        "h7_empty",
        False,
    ),
    (
        "app-rn/src/services/algolia.js",
        """import algoliasearch from 'algoliasearch';

// admin key, needed for the in-app "reindex" debug button
const client = algoliasearch('QX7T2N4KPL', '{V}');

export const productsIndex = client.initIndex('products_prod');
""",
        "h7_hex32",
        True,
    ),
    (
        "app-rn/ios/Podfile.lock",
        """SPEC CHECKSUMS:
  boost: {V}
  DoubleConversion: {V2}
  FBLazyVector: {V3}

PODFILE CHECKSUM: {V4}

COCOAPODS: 1.14.3
""",
        "h7_sha1",
        False,
    ),
    # ---- Airflow ---------------------------------------------------------------------
    (
        "pipelines/dags/sync_hubspot.py",
        """from datetime import datetime

from airflow import DAG
from airflow.operators.python import PythonOperator

HUBSPOT_TOKEN = "pat-eu1-{V}"


def pull_contacts(**_):
    import requests

    r = requests.get(
        "https://api.hubapi.com/crm/v3/objects/contacts",
        headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
        timeout=30,
    )
    r.raise_for_status()


with DAG("sync_hubspot", start_date=datetime(2024, 1, 1), schedule="@hourly", catchup=False):
    PythonOperator(task_id="pull_contacts", python_callable=pull_contacts)
""",
        "h7_snyk",
        True,
    ),
    (
        "pipelines/dags/export_to_s3.py",
        """from datetime import datetime

from airflow import DAG
from airflow.models import Variable
from airflow.providers.amazon.aws.transfers.sql_to_s3 import SqlToS3Operator

with DAG("export_orders", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False):
    SqlToS3Operator(
        task_id="orders_to_s3",
        sql_conn_id="warehouse",
        query="select * from orders where updated_at::date = '{{ ds }}'",
        s3_bucket=Variable.get("export_bucket"),
        s3_key="orders/{{ ds }}.parquet",
        aws_conn_id="{V}",
    )
""",
        "h7_name",
        False,
    ),
    (
        "pipelines/docker-compose.yaml",
        """x-airflow-common: &airflow-common
  image: apache/airflow:2.8.1
  environment:
    AIRFLOW__CORE__EXECUTOR: CeleryExecutor
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: ${AIRFLOW_DB_CONN}
    AIRFLOW__CORE__FERNET_KEY: '{V}'
    AIRFLOW__WEBSERVER__SECRET_KEY: '{V2}'
""",
        "h7_b64_32",
        True,
    ),
    (
        "pipelines/airflow_settings.yaml",
        """airflow:
  connections:
    - conn_id: snowflake_default
      conn_type: snowflake
      conn_host: xy12345.eu-central-1.snowflakecomputing.com
      conn_login: AIRFLOW_SVC
      conn_password: {V}
      conn_schema: RAW
  variables:
    - variable_name: slack_channel
      variable_value: "#data-alerts"
""",
        "h7_strong_pass",
        True,
    ),
    (
        "pipelines/.env",
        """AIRFLOW_UID=50000
AIRFLOW_CONN_WAREHOUSE={V}
AIRFLOW_CONN_ANALYTICS_DB={V2}
""",
        "h7_db_uri",
        True,
    ),
    # ---- dbt ---------------------------------------------------------------------------
    (
        "analytics/profiles.yml",
        """stitch_analytics:
  target: dev
  outputs:
    dev:
      type: postgres
      host: localhost
      user: analytics
      password: {V}
      port: 5432
      dbname: analytics
      schema: dbt_dev
      threads: 4
""",
        "h7_word_pass",
        True,
    ),
    (
        "analytics/profiles.yml.template",
        """stitch_analytics:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: xy12345.eu-central-1
      user: DBT_CLOUD
      password: {V}
      role: TRANSFORMER
      database: ANALYTICS
      warehouse: TRANSFORMING
      schema: marts
""",
        "h7_env_ref",
        False,
    ),
    (
        "analytics/ci/profiles.yml",
        """stitch_analytics:
  target: ci
  outputs:
    ci:
      type: bigquery
      method: service-account-json
      project: stitch-analytics-ci
      dataset: dbt_ci
      keyfile_json:
        type: service_account
        project_id: stitch-analytics-ci
        private_key_id: 6f1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c
        private_key: "{V}"
        client_email: dbt-ci@stitch-analytics-ci.iam.gserviceaccount.com
""",
        "h7_gcp_key",
        True,
    ),
    (
        "analytics/models/staging/stg_users.sql",
        """with source as (
    select * from {{ source('app', 'users') }}
)

select
    id as user_id,
    email,
    -- never select the raw column; hashed with the pepper in the app
    '{V}' as password_hash_sample,
    created_at
from source
""",
        "h7_pw_hash",
        False,
    ),
    # ---- Spark / notebooks -------------------------------------------------------------
    (
        "jobs/spark/enrich_events.py",
        """from pyspark.sql import SparkSession

spark = (
    SparkSession.builder.appName("enrich_events")
    .config(
        "spark.hadoop.fs.s3a.aws.credentials.provider",
        "com.amazonaws.auth.WebIdentityTokenCredentialsProvider",
    )
    .config("spark.hadoop.fs.s3a.secret.key", {V})
    .getOrCreate()
)
""",
        "h7_env_ref",
        False,
    ),
    (
        "jobs/spark/conf/spark-defaults.conf",
        """spark.master                      k8s://https://kubernetes.default.svc
spark.kubernetes.namespace        data
spark.hadoop.fs.s3a.endpoint      https://minio.data.svc:9000
spark.hadoop.fs.s3a.access.key    spark-jobs
spark.hadoop.fs.s3a.secret.key    {V}
spark.hadoop.fs.s3a.path.style.access true
""",
        "h7_strong_pass",
        True,
    ),
    (
        "notebooks/churn_exploration.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import snowflake.connector\\n",
    "conn = snowflake.connector.connect(\\n",
    "    account='xy12345.eu-central-1',\\n",
    "    user='MARTA',\\n",
    "    password='{V}',\\n",
    "    warehouse='ADHOC',\\n",
    ")"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h7_cap_pass",
        True,
    ),
    (
        "notebooks/pricing_model.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import os\\n",
    "from databricks import sql\\n",
    "conn = sql.connect(server_hostname='adb-4419.12.azuredatabricks.net',\\n",
    "                   http_path='/sql/1.0/warehouses/8f1e',\\n",
    "                   access_token={V})"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h7_env_ref",
        False,
    ),
    (
        "notebooks/ad_spend.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 7,
   "metadata": {},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": [
      "Connected as growth@stitchlabs.io, token {V}\\n"
     ]
    }
   ],
   "source": ["client = ads.connect(token=getpass())\\n", "print(client.whoami())"]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h7_alnum_token",
        True,
    ),
    # ---- Terraform -----------------------------------------------------------------------
    (
        "infra/terraform/envs/prod/terraform.tfvars",
        """region          = "eu-central-1"
environment     = "prod"
db_instance     = "db.r6g.large"
db_username     = "stitch_admin"
db_password     = "{V}"
datadog_api_key = "{V2}"
""",
        "h7_strong_pass",
        True,
    ),
    (
        "infra/terraform/modules/rds/variables.tf",
        """variable "db_password" {
  description = "Master password; supplied from 1Password via TF_VAR_db_password"
  type        = string
  sensitive   = true
  default     = "{V}"
}

variable "min_password_length" {
  type    = number
  default = 16
}
""",
        "h7_empty",
        False,
    ),
    (
        "infra/terraform/providers.tf",
        """terraform {
  required_providers {
    cloudflare = { source = "cloudflare/cloudflare", version = "~> 4.20" }
    datadog    = { source = "DataDog/datadog", version = "~> 3.36" }
  }
}

provider "cloudflare" {
  api_token = "{V}"
}

provider "datadog" {
  api_key = var.datadog_api_key
  app_key = var.datadog_app_key
}
""",
        "h7_alnum_token",
        True,
    ),
    (
        "infra/terraform/modules/app/secrets.tf",
        """data "aws_secretsmanager_secret_version" "db" {
  secret_id = "{V}"
}

locals {
  db = jsondecode(data.aws_secretsmanager_secret_version.db.secret_string)
}
""",
        "h7_store_ref",
        False,
    ),
    (
        "infra/terraform/.terraform.lock.hcl",
        """provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.31.0"
  constraints = "~> 5.0"
  hashes = [
    "h1:{V}=",
    "zh:{V2}",
    "zh:{V3}",
  ]
}
""",
        "h7_sha256",
        False,
    ),
    (
        "infra/terraform/envs/staging/backend.hcl",
        """bucket         = "stitch-tfstate-staging"
key            = "staging/terraform.tfstate"
region         = "eu-central-1"
access_key     = "{V}"
""",
        "h7_aws_pair",
        True,
    ),
    (
        "infra/terraform/envs/staging/terraform.tfstate",
        """{
  "version": 4,
  "terraform_version": "1.6.6",
  "serial": 41,
  "resources": [
    {
      "mode": "managed",
      "type": "random_password",
      "name": "redis",
      "provider": "provider[\\"registry.terraform.io/hashicorp/random\\"]",
      "instances": [
        {
          "attributes": {
            "id": "none",
            "length": 32,
            "result": "{V}",
            "special": false
          },
          "sensitive_attributes": []
        }
      ]
    }
  ]
}
""",
        "h7_alnum_token",
        True,
    ),
    (
        "infra/terraform/modules/bastion/main.tf",
        """resource "aws_key_pair" "bastion" {
  key_name   = "bastion-ops"
  public_key = "{V}"
}

resource "aws_instance" "bastion" {
  ami           = data.aws_ami.ubuntu.id
  instance_type = "t3.micro"
  key_name      = aws_key_pair.bastion.key_name
}
""",
        "h7_ssh_pub",
        False,
    ),
    (
        "infra/terraform/modules/github/main.tf",
        """provider "github" {
  owner = "stitchlabs"
  token = "{V}"
}

resource "github_actions_secret" "npm" {
  repository      = "web"
  secret_name     = "NPM_TOKEN"
  plaintext_value = var.npm_token
}
""",
        "h7_github",
        True,
    ),
    # ---- Pulumi / CDK ----------------------------------------------------------------------
    (
        "infra/pulumi/Pulumi.prod.yaml",
        """config:
  aws:region: eu-central-1
  stitch:dbPassword:
    secure: {V}
  stitch:apiToken:
    secure: {V2}
""",
        "h7_sealed",
        False,
    ),
    (
        "infra/pulumi/Pulumi.dev.yaml",
        """config:
  aws:region: eu-central-1
  stitch:dbUser: stitch
  stitch:dbPassword: {V}
  stitch:instanceType: t3.small
""",
        "h7_word_pass",
        True,
    ),
    (
        "infra/pulumi/index.ts",
        """import * as pulumi from '@pulumi/pulumi';
import * as aws from '@pulumi/aws';

const cfg = new pulumi.Config();

const db = new aws.rds.Instance('app-db', {
  engine: 'postgres',
  instanceClass: 'db.t4g.medium',
  username: 'stitch',
  password: '{V}',
  allocatedStorage: 50,
  skipFinalSnapshot: true,
});

export const endpoint = db.endpoint;
""",
        "h7_cap_pass",
        True,
    ),
    (
        "infra/cdk/lib/api-stack.ts",
        """import * as cdk from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

export class ApiStack extends cdk.Stack {
  constructor(scope: Construct, id: string, props?: cdk.StackProps) {
    super(scope, id, props);
    const secret = secretsmanager.Secret.fromSecretCompleteArn(
      this,
      'DbSecret',
      '{V}',
    );
    new cdk.CfnOutput(this, 'SecretName', { value: secret.secretName });
  }
}
""",
        "h7_store_ref",
        False,
    ),
    (
        "infra/cdk/lib/alerts-stack.ts",
        """import * as cdk from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export class AlertsStack extends cdk.Stack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    const topic = new sns.Topic(this, 'Alarms');
    topic.addSubscription(new subs.UrlSubscription('{V}'));
  }
}
""",
        "h7_webhook",
        True,
    ),
    (
        "infra/cdk/cdk.context.json",
        """{
  "availability-zones:account=482910337164:region=eu-central-1": [
    "eu-central-1a",
    "eu-central-1b",
    "eu-central-1c"
  ],
  "vpc-provider:account=482910337164:filter.vpc-id=vpc-0a1b2c3d:region=eu-central-1": {
    "vpcId": "vpc-0a1b2c3d",
    "vpcCidrBlock": "10.20.0.0/16",
    "ownerAccountId": "482910337164"
  },
  "acknowledged-issue-numbers": [32775],
  "stitch:deploymentId": "{V}"
}
""",
        "h7_uuid",
        False,
    ),
    # ---- Helm / Kustomize -------------------------------------------------------------------
    (
        "deploy/helm/stitch-api/values-staging.yaml",
        """replicaCount: 2
image:
  repository: ghcr.io/stitchlabs/api
  tag: 1.42.0
env:
  DATABASE_URL: "{V}"
  REDIS_URL: redis://redis-master.cache.svc:6379/0
ingress:
  enabled: true
  hosts:
    - host: api.staging.stitchlabs.io
""",
        "h7_db_uri",
        True,
    ),
    (
        "deploy/helm/stitch-api/values.yaml",
        """replicaCount: 1
postgresql:
  enabled: true
  auth:
    username: stitch
    password: "{V}"
    existingSecret: ""
redis:
  auth:
    password: "{V2}"
""",
        "h7_placeholder",
        False,
    ),
    (
        "deploy/helm/stitch-api/templates/secret.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: {{ include "stitch-api.fullname" . }}
type: Opaque
data:
  db-password: {{ .Values.db.password | b64enc | quote }}
  jwt-secret: {{ required "jwtSecret is required" .Values.jwtSecret | b64enc | quote }}
  sentry-dsn: "{V}"
""",
        "h7_empty",
        False,
    ),
    (
        "deploy/k8s/overlays/prod/secret-registry.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: ghcr-pull
  namespace: stitch
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"ghcr.io":{"username":"stitch-bot","password":"{V}"}}}'
""",
        "h7_github",
        True,
    ),
    (
        "deploy/k8s/overlays/dev/kustomization.yaml",
        """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: stitch-dev
resources:
  - ../../base
secretGenerator:
  - name: api-env
    literals:
      - DB_PASSWORD={V}
      - SESSION_SECRET={V2}
""",
        "h7_word_pass",
        True,
    ),
    (
        "deploy/k8s/base/sealed-db.yaml",
        """apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: db-credentials
  namespace: stitch
spec:
  encryptedData:
    password: {V}
    username: {V2}
""",
        "h7_sealed",
        False,
    ),
    (
        "deploy/k8s/base/secret-stripe.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: stripe
  namespace: stitch
type: Opaque
data:
  STRIPE_SECRET_KEY: {V}
""",
        "h7_b64_stripe",
        True,
    ),
    (
        "deploy/k8s/secrets.enc.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: api-env
type: Opaque
stringData:
  DB_PASSWORD: {V}
  JWT_SECRET: {V2}
sops:
  kms:
    - arn: arn:aws:kms:eu-central-1:482910337164:key/2f1e6a0c-9b4d-4c1e-8a57-3d2f0b9e7c11
  lastmodified: "2024-03-11T09:12:44Z"
  version: 3.8.1
""",
        "h7_sops",
        False,
    ),
    (
        "deploy/kubeconfig-ci.yaml",
        """apiVersion: v1
kind: Config
clusters:
  - name: stitch-prod
    cluster:
      server: https://k8s.stitchlabs.io:6443
users:
  - name: ci-deployer
    user:
      client-key-data: {V}
contexts:
  - name: ci@stitch-prod
    context: { cluster: stitch-prod, user: ci-deployer }
current-context: ci@stitch-prod
""",
        "h7_b64_pem",
        True,
    ),
    (
        "deploy/k8s/base/ingress-auth.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: grafana-basic-auth
  namespace: monitoring
stringData:
  auth: |
    ops:{V}
""",
        "h7_pw_hash",
        False,
    ),
    # ---- Ansible / Packer / Vagrant --------------------------------------------------------
    (
        "ops/ansible/group_vars/all/vault.yml",
        """{IV}
""",
        "h7_ansible_vault",
        False,
    ),
    (
        "ops/ansible/group_vars/staging.yml",
        """postgres_version: 15
postgres_users:
  - name: stitch
    password: "{V}"
    role_attr_flags: LOGIN
  - name: metabase
    password: "{V2}"
    role_attr_flags: LOGIN
""",
        "h7_cap_pass",
        True,
    ),
    (
        "ops/ansible/roles/app/defaults/main.yml",
        """app_user: stitch
app_port: 8000
app_db_password: "{{ vault_app_db_password }}"
app_secret_key: "{V}"
""",
        "h7_placeholder",
        False,
    ),
    (
        "ops/ansible/.vault_pass",
        """{V}
""",
        "h7_passphrase",
        True,
    ),
    (
        "ops/ansible/inventories/hetzner.ini",
        """[web]
web-1 ansible_host=49.12.71.4
web-2 ansible_host=49.12.71.5

[web:vars]
ansible_user=deploy
ansible_become_pass={V}
""",
        "h7_word_pass",
        True,
    ),
    (
        "ops/ansible/roles/monitoring/templates/alertmanager.yml.j2",
        """route:
  receiver: slack
receivers:
  - name: slack
    slack_configs:
      - api_url: "{V}"
        channel: "#ops-alerts"
        send_resolved: true
""",
        "h7_webhook",
        True,
    ),
    (
        "ops/packer/ubuntu-base.pkr.hcl",
        """source "amazon-ebs" "ubuntu" {
  region        = "eu-central-1"
  instance_type = "t3.small"
  ssh_username  = "ubuntu"
  ami_name      = "stitch-base-{{timestamp}}"
}

build {
  sources = ["source.amazon-ebs.ubuntu"]
  provisioner "shell" {
    environment_vars = ["DD_API_KEY={V}"]
    script           = "scripts/install-datadog.sh"
  }
}
""",
        "h7_datadog",
        True,
    ),
    (
        "ops/packer/variables.pkr.hcl",
        """variable "ssh_password" {
  type      = string
  sensitive = true
  default   = "{V}"
}

variable "iso_checksum" {
  type    = string
  default = "sha256:5e38b55d57d94ff029719342357325ed3bda38fa80054f9330dc789cd2d43931"
}
""",
        "h7_placeholder",
        False,
    ),
    (
        "ops/vagrant/Vagrantfile",
        """Vagrant.configure("2") do |config|
  config.vm.box = "bento/ubuntu-22.04"
  config.vm.network "forwarded_port", guest: 5432, host: 15432
  config.vm.provision "shell", inline: <<-SHELL
    apt-get install -y postgresql
    sudo -u postgres psql -c "CREATE USER stitch WITH PASSWORD '{V}' SUPERUSER;"
  SHELL
end
""",
        "h7_word_pass",
        True,
    ),
    # ---- GitHub Actions ----------------------------------------------------------------------
    (
        ".github/workflows/release.yml",
        """name: release
on:
  push:
    tags: ["v*"]
jobs:
  publish:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 20
          registry-url: https://registry.npmjs.org
      - run: npm publish --access public
        env:
          NODE_AUTH_TOKEN: {V}
""",
        "h7_ci_ref",
        False,
    ),
    (
        ".github/workflows/e2e.yml",
        """name: e2e
on: [pull_request]
jobs:
  cypress:
    runs-on: ubuntu-latest
    services:
      postgres:
        image: postgres:16
        env:
          POSTGRES_HOST_AUTH_METHOD: trust
        ports: ["5432:5432"]
    steps:
      - uses: actions/checkout@v4
      - run: npx cypress run --record --key {V}
""",
        "h7_snyk",
        True,
    ),
    (
        ".github/workflows/deploy.yml",
        """name: deploy
on:
  workflow_dispatch:
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: docker/login-action@v3
        with:
          username: stitchlabs
          password: {V}
      - run: docker buildx build --push -t stitchlabs/api:${{ github.sha }} .
""",
        "h7_dockerhub_pat",
        True,
    ),
    (
        ".github/workflows/docker.yml",
        """      - name: Pin base image
        run: echo "BASE=node:20-alpine@{V}" >> "$GITHUB_ENV"
      - uses: docker/build-push-action@v5
        with:
          build-args: BASE_IMAGE=${{ env.BASE }}
""",
        "h7_docker_digest",
        False,
    ),
    (
        ".github/workflows/notify.yml",
        """name: notify
on:
  workflow_run:
    workflows: [deploy]
    types: [completed]
jobs:
  slack:
    runs-on: ubuntu-latest
    steps:
      - run: |
          curl -sS -X POST -H 'Content-type: application/json' \\
            --data '{"text":"deploy finished: ${{ github.event.workflow_run.conclusion }}"}' \\
            {V}
""",
        "h7_webhook",
        True,
    ),
    # ---- GitLab CI ----------------------------------------------------------------------------
    (
        ".gitlab-ci.yml",
        """stages: [test, build, deploy]

variables:
  POSTGRES_DB: stitch_test
  POSTGRES_USER: runner
  POSTGRES_PASSWORD: {V}
  DATABASE_URL: "postgres://runner:$POSTGRES_PASSWORD@postgres:5432/stitch_test"

test:
  stage: test
  image: python:3.12
  services: [postgres:16]
  script:
    - pip install -r requirements-dev.txt
    - pytest -q
""",
        "h7_word_pass",
        True,
    ),
    (
        "ci/gitlab/deploy.gitlab-ci.yml",
        """deploy:prod:
  stage: deploy
  image: alpine/helm:3.14
  script:
    - echo "$KUBECONFIG_B64" | base64 -d > kubeconfig
    - helm registry login registry.gitlab.com -u gitlab-ci-token -p {V}
    - helm upgrade --install api ./deploy/helm/stitch-api -f values-prod.yaml
  rules:
    - if: $CI_COMMIT_TAG
""",
        "h7_ci_ref",
        False,
    ),
    (
        "ci/gitlab/mirror.gitlab-ci.yml",
        """mirror:github:
  stage: .post
  script:
    - git push --mirror "https://oauth2:{V}@gitlab.com/stitchlabs/web-mirror.git"
  only: [main]
""",
        "h7_gitlab",
        True,
    ),
    # ---- Jenkins -------------------------------------------------------------------------------
    (
        "Jenkinsfile",
        """pipeline {
    agent { label 'docker' }
    environment {
        SONAR_TOKEN = credentials('{V}')
        REGISTRY = 'registry.stitchlabs.io'
    }
    stages {
        stage('Test') { steps { sh 'make test' } }
        stage('Scan') { steps { sh 'sonar-scanner -Dsonar.login=$SONAR_TOKEN' } }
    }
}
""",
        "h7_name",
        False,
    ),
    (
        "ci/jenkins/trigger-nightly.sh",
        """#!/usr/bin/env bash
set -euo pipefail
# kicks the nightly data job from the cron box
curl -fsS -X POST \\
  --user "airflow-bot:{V}" \\
  "https://jenkins.stitchlabs.io/job/data/job/nightly/buildWithParameters?DATE=$(date +%F)"
""",
        "h7_jenkins_token",
        True,
    ),
    (
        "ci/jenkins/casc/jenkins.yaml",
        """jenkins:
  securityRealm:
    local:
      allowsSignup: false
      users:
        - id: admin
          password: {V}
credentials:
  system:
    domainCredentials:
      - credentials:
          - usernamePassword:
              id: nexus
              username: jenkins
              password: "${NEXUS_PASSWORD}"
""",
        "h7_cap_pass",
        True,
    ),
    # ---- CircleCI / Bitbucket / Azure DevOps / Drone ---------------------------------------------
    (
        ".circleci/config.yml",
        """version: 2.1
orbs:
  node: circleci/node@5.2
jobs:
  test:
    docker:
      - image: cimg/node:20.11
      - image: cimg/postgres:16.1
        environment:
          POSTGRES_USER: circle
          POSTGRES_PASSWORD: {V}
    steps:
      - checkout
      - node/install-packages
      - run: npm test
""",
        "h7_word_pass",
        True,
    ),
    (
        ".circleci/trigger.sh",
        """#!/bin/sh
curl -X POST https://circleci.com/api/v2/project/gh/stitchlabs/web/pipeline \\
  -H "Circle-Token: {V}" \\
  -H "Content-Type: application/json" \\
  -d '{"branch":"main","parameters":{"run_e2e":true}}'
""",
        "h7_circle_token",
        True,
    ),
    (
        "bitbucket-pipelines.yml",
        """image: node:20

pipelines:
  branches:
    main:
      - step:
          name: Deploy to S3
          script:
            - pipe: atlassian/aws-s3-deploy:1.1.0
              variables:
                AWS_ACCESS_KEY_ID: {V}
                AWS_SECRET_ACCESS_KEY: {V2}
                S3_BUCKET: stitch-landing
                LOCAL_PATH: dist
""",
        "h7_ci_ref",
        False,
    ),
    (
        "azure-pipelines.yml",
        """trigger:
  - main

pool:
  vmImage: ubuntu-latest

steps:
  - task: NuGetAuthenticate@1
  - script: |
      dotnet nuget add source https://pkgs.dev.azure.com/stitchlabs/_packaging/internal/nuget/v3/index.json \\
        --name internal --username az --password {V} --store-password-in-clear-text
      dotnet restore
    displayName: restore
""",
        "h7_ado_pat",
        True,
    ),
    (
        "ci/azure/variables-prod.yml",
        """variables:
  - group: stitch-prod-secrets
  - name: sqlPassword
    value: $(SqlAdminPassword)
  - name: buildConfiguration
    value: Release
  - name: artifactFeed
    value: {V}
""",
        "h7_uuid",
        False,
    ),
    (
        ".drone.yml",
        """kind: pipeline
type: docker
name: default

steps:
  - name: publish
    image: plugins/docker
    settings:
      repo: registry.stitchlabs.io/worker
      username: drone
      password: {V}
""",
        "h7_strong_pass",
        True,
    ),
    (
        ".drone.jsonnet",
        """local secret(name) = { from_secret: name };

{
  kind: 'pipeline',
  name: 'publish',
  steps: [{
    name: 'npm',
    image: 'plugins/npm',
    settings: { username: 'stitch', token: secret('{V}') },
  }],
}
""",
        "h7_name",
        False,
    ),
    # ---- local dev setup ---------------------------------------------------------------------
    (
        "docker-compose.yml",
        """services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: stitch
      POSTGRES_PASSWORD: {V}
    volumes: [pgdata:/var/lib/postgresql/data]
  minio:
    image: minio/minio
    command: server /data --console-address ":9001"
    environment:
      MINIO_ROOT_USER: stitch
      MINIO_ROOT_PASSWORD: {V2}
volumes:
  pgdata: {}
""",
        "h7_word_pass",
        True,
    ),
    (
        "docker-compose.prod.yml",
        """services:
  api:
    image: ghcr.io/stitchlabs/api:latest
    environment:
      DATABASE_PASSWORD_FILE: {V}
    secrets: [postgres_password]
secrets:
  postgres_password:
    external: true
""",
        "h7_path",
        False,
    ),
    (
        "docker-compose.override.yml",
        """services:
  api:
    environment:
      MAILGUN_API_KEY: key-{V}
      SENTRY_ENVIRONMENT: local
""",
        "h7_hex32",
        True,
    ),
    (
        ".devcontainer/devcontainer.json",
        """{
  "name": "stitch",
  "dockerComposeFile": ["../docker-compose.yml"],
  "service": "api",
  "remoteEnv": {
    "GITHUB_TOKEN": "{V}",
    "PGPASSWORD": "${localEnv:PGPASSWORD}"
  },
  "customizations": { "vscode": { "extensions": ["ms-python.python"] } }
}
""",
        "h7_ci_ref",
        False,
    ),
    (
        "Makefile",
        """.PHONY: up migrate psql

PG_URL ?= {V}

up:
\tdocker compose up -d

migrate:
\tmigrate -path migrations -database "$(PG_URL)" up

psql:
\tpsql "$(PG_URL)"
""",
        "h7_db_uri",
        True,
    ),
    (
        "scripts/bootstrap-dev.sh",
        """#!/usr/bin/env bash
set -euo pipefail

echo "Creating local admin..."
docker compose exec -T api python manage.py shell <<'PY'
from apps.accounts.models import User
User.objects.filter(email="dev@stitch.local").exists() or User.objects.create_superuser(
    "dev@stitch.local", "{V}"
)
PY
""",
        "h7_word_pass",
        True,
    ),
    (
        "scripts/restore-snapshot.sh",
        """#!/usr/bin/env bash
set -euo pipefail
export PGPASSWORD='{V}'
pg_restore --no-owner -h warehouse.prod.lan -U readonly -d stitch_local "$1"
""",
        "h7_strong_pass",
        True,
    ),
    (
        "scripts/rotate-keys.py",
        """#!/usr/bin/env python3
\"\"\"Rotate the API signing key: prints the new value; store it in 1Password, never here.\"\"\"
import secrets

MIN_BYTES = {V}

if __name__ == "__main__":
    print(secrets.token_urlsafe(MIN_BYTES))
""",
        "h7_rule",
        False,
    ),
    (
        ".env.test",
        """NODE_ENV=test
DATABASE_URL={V}
JWT_SECRET=test-secret
""",
        "h7_example_uri",
        False,
    ),
    (
        ".npmrc",
        """@stitchlabs:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
//registry.npmjs.org/:_authToken=${NPM_TOKEN}
""",
        "h7_github",
        True,
    ),
    (
        ".yarnrc.yml",
        """nodeLinker: node-modules
npmScopes:
  stitchlabs:
    npmRegistryServer: "https://registry.npmjs.org"
    npmAuthToken: "{V}"
""",
        "h7_npm",
        True,
    ),
    (
        "scripts/.netrc.ci",
        """machine github.com
  login stitch-ci
  password {V}
machine api.heroku.com
  login ci@stitchlabs.io
  password ${HEROKU_API_KEY}
""",
        "h7_github",
        True,
    ),
    (
        "docker/php/auth.json",
        """{
    "http-basic": {
        "repo.packagist.com": {
            "username": "token",
            "password": "{V}"
        }
    }
}
""",
        "h7_hex40",
        True,
    ),
    (
        "Dockerfile",
        """FROM python:3.12-slim@{V}
ENV PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN --mount=type=secret,id=pip_token PIP_INDEX_URL="https://__token__:$(cat /run/secrets/pip_token)@pypi.stitchlabs.io/simple" pip install -r requirements.txt
COPY . .
CMD ["gunicorn", "config.wsgi"]
""",
        "h7_docker_digest",
        False,
    ),
    (
        "docker/worker/Dockerfile",
        """FROM node:20-alpine
WORKDIR /srv
ARG NPM_TOKEN={V}
RUN echo "//registry.npmjs.org/:_authToken=${NPM_TOKEN}" > .npmrc && npm ci && rm .npmrc
COPY . .
CMD ["node", "dist/worker.js"]
""",
        "h7_npm",
        True,
    ),
    # ---- docs: READMEs, runbooks, ADRs, wiki exports ------------------------------------------
    (
        "README.md",
        """# Stitch

## Local setup

1. `cp .env.example .env`
2. `docker compose up -d`
3. Log in at http://localhost:8000/admin with `dev@stitch.local` / `{V}`
   (created by `scripts/bootstrap-dev.sh`).

## Tests

`make test` runs the unit tests; `make e2e` needs Chrome.
""",
        "h7_word_pass",
        True,
    ),
    (
        "docs/runbooks/db-failover.md",
        """# Runbook: Postgres failover

1. Page the on-call DBA (#ops-oncall).
2. Connect to the replica:

   ```sh
   psql "{V}"
   ```

3. Promote: `select pg_promote();`
4. Update `DATABASE_URL` in the `prod` 1Password vault and restart the API pods.
""",
        "h7_db_uri",
        True,
    ),
    (
        "docs/runbooks/rotate-secrets.md",
        """# Runbook: rotating the API secrets

The values live in AWS Secrets Manager, **never** in this repo:

| Secret | Where |
| --- | --- |
| DB password | `{V}` |
| Stripe key | `{V2}` |

After rotation, run `kubectl rollout restart deploy/api -n stitch`.
""",
        "h7_store_ref",
        False,
    ),
    (
        "docs/adr/0007-use-sops-for-secrets.md",
        """# ADR 0007: Use SOPS with KMS for Kubernetes secrets

## Status
Accepted (2023-11-02)

## Context
Contractors committed plain Secrets twice. Example of what we now commit instead:

```yaml
DB_PASSWORD: {V}
```

## Decision
All secrets in `deploy/` are encrypted with `sops` using the `alias/stitch-sops` KMS key.
""",
        "h7_sops",
        False,
    ),
    (
        "docs/adr/0004-auth-tokens.md",
        """# ADR 0004: API authentication

We issue short-lived JWTs (15 minutes). A decoded example from the jwt.io docs:

    {V}

Refresh tokens are opaque and stored hashed (SHA-256) in `refresh_tokens`.
""",
        "h7_docs_example",
        False,
    ),
    (
        "docs/wiki/Onboarding-Contractors.md",
        """# Onboarding contractors

- VPN: ask IT for a WireGuard profile.
- Staging basic auth (nginx in front of staging): user `preview`, password `{V}`
- Staging admin: create your own user with `make createsuperuser`.
- Do **not** use production data locally.
""",
        "h7_cap_pass",
        True,
    ),
    (
        "docs/wiki/export/Integrations.html",
        """<h2>Slack alerts</h2>
<p>Alerts for the data team go to <code>#data-alerts</code> via the incoming webhook:</p>
<pre>{V}</pre>
<p>Ask Marta before adding a new channel.</p>
""",
        "h7_webhook",
        True,
    ),
    (
        "docs/security.md",
        """# Password policy

- Minimum length: {V} characters
- Passwords are hashed with Argon2id (`m=65536, t=3, p=4`).
- Accounts lock after 10 failed attempts (error `AUTH_429`).
""",
        "h7_rule",
        False,
    ),
    (
        "docs/api/authentication.md",
        """# Authentication

Send your API key in the `Authorization` header:

```http
GET /v2/orders HTTP/1.1
Host: api.stitchlabs.io
Authorization: Bearer {V}
```

Keys are created in *Settings → API keys*.
""",
        "h7_placeholder",
        False,
    ),
    (
        "docs/deploy/ssh.md",
        """# SSH access

Add your key to `ops/ansible/files/authorized_keys`:

```
{V}
```

Ask in #ops for the bastion host key fingerprint.
""",
        "h7_ssh_pub",
        False,
    ),
    (
        "CHANGELOG.md",
        """## 1.42.0 (2024-03-18)

- Fix: password reset emails used the wrong locale ({V})
- Bump `jsonwebtoken` to 9.0.2
- Rotate the staging Stripe key after accidental commit in 41c2e0d
""",
        "h7_git_sha",
        False,
    ),
    # ---- tests / fixtures ----------------------------------------------------------------------
    (
        "api/test/fixtures/webhook-events.json",
        """[
  {
    "id": "evt_1OqK2c",
    "type": "invoice.paid",
    "signature_header": "t=1709561234,v1={V}"
  }
]
""",
        "h7_hex64",
        False,
    ),
    (
        "backend/apps/payments/tests/test_webhooks.py",
        """import pytest

from apps.payments.webhooks import verify

SIGNING_SECRET = "{V}"


@pytest.mark.parametrize("tamper", [False, True])
def test_signature(tamper, stripe_event_payload):
    assert verify(stripe_event_payload, secret=SIGNING_SECRET) is not tamper
""",
        "h7_stripe",
        True,
    ),
    (
        "gateway/testdata/tls/server.key",
        """{V}
""",
        "h7_pem",
        True,
    ),
    (
        "gateway/testdata/tls/server.crt",
        """{V}
""",
        "h7_public_pem",
        False,
    ),
    (
        "gateway/testdata/tls/client.key.enc",
        """{V}
""",
        "h7_encrypted_pem",
        False,
    ),
    (
        "api/test/__snapshots__/users.spec.ts.snap",
        """// Jest Snapshot v1, https://goo.gl/fbAQLP

exports[`GET /users/:id masks secrets 1`] = `
{
  "apiKey": "{V}",
  "email": "growth@stitchlabs.io",
  "id": 42,
}
`;
""",
        "h7_placeholder",
        False,
    ),
    (
        "backend/apps/accounts/tests/test_mfa.py",
        """import pyotp

from apps.accounts.mfa import verify_code

# seed of the shared QA account (qa@stitchlabs.io) on staging
QA_TOTP_SEED = "{V}"


def test_current_code_is_accepted():
    assert verify_code(QA_TOTP_SEED, pyotp.TOTP(QA_TOTP_SEED).now())
""",
        "h7_totp_seed",
        True,
    ),
    (
        "web/spec/fixtures/files/package-lock.json",
        """{
  "name": "stitch-web",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/jsonwebtoken": {
      "version": "9.0.2",
      "resolved": "https://registry.npmjs.org/jsonwebtoken/-/jsonwebtoken-9.0.2.tgz",
      "integrity": "{V}"
    }
  }
}
""",
        "h7_integrity",
        False,
    ),
    (
        "api/test/setup/env.ts",
        """process.env.DATABASE_URL = '{V}';
process.env.JWT_SECRET = process.env.JWT_SECRET ?? 'jest';
process.env.STRIPE_SECRET_KEY = 'sk_test_placeholder';
""",
        "h7_example_uri",
        False,
    ),
    (
        "pipelines/tests/test_connections.py",
        """from airflow.models import Connection


def test_warehouse_uri_parses():
    conn = Connection(uri="{V}")
    assert conn.conn_type in {"postgres", "mysql", "amqp", "redis", "mongodb"}
""",
        "h7_example_uri",
        False,
    ),
    (
        "infra/terraform/tests/fixtures/outputs.json",
        """{
  "ci_role_arn": { "value": "arn:aws:iam::482910337164:role/github-oidc-ci" },
  "kms_key_id": { "value": "{V}" },
  "ecr_repository_url": { "value": "482910337164.dkr.ecr.eu-central-1.amazonaws.com/api" }
}
""",
        "h7_uuid",
        False,
    ),
    (
        "ops/aws/ci-user_credentials.csv",
        """User name,Password,Access key ID,Secret access key,Console login link
{V}
""",
        "h7_aws_csv_row",
        True,
    ),
    (
        "ops/aws/config",
        """[profile stitch-prod]
sso_start_url = https://stitchlabs.awsapps.com/start
sso_region = eu-central-1
sso_account_id = 482910337164
sso_role_name = AdministratorAccess
region = eu-central-1

[profile legacy-ci]
aws_access_key_id = {V}
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
""",
        "h7_aws_example",
        False,
    ),
    (
        "ops/vault/policies/README.md",
        """Log in with your GitHub token, then read the app secrets:

```sh
vault login -method=github token="$GITHUB_TOKEN"
export VAULT_TOKEN={V}
vault kv get secret/stitch/api
```
""",
        "h7_vault",
        True,
    ),
    (
        "api/src/i18n/vi.json",
        """{
  "auth": {
    "password": "Mật khẩu",
    "invalidPassword": "{V}",
    "resetSent": "Đã gửi liên kết đặt lại mật khẩu"
  }
}
""",
        "h7_i18n",
        False,
    ),
    (
        "web/app/javascript/controllers/password_controller.js",
        """import { Controller } from '@hotwired/stimulus';

export default class extends Controller {
  static values = { minLength: Number };

  check() {
    const ok = this.element.value.length >= this.minLengthValue;
    this.element.setCustomValidity(ok ? '' : '{V}');
  }
}
""",
        "h7_error_code",
        False,
    ),
    (
        "tools/linear-sync/config.toml",
        """[linear]
team = "ENG"
api_key = "{V}"

[github]
repo = "stitchlabs/web"
""",
        "h7_linear_key",
        True,
    ),
    (
        "tools/terraform-cloud/credentials.tfrc.json",
        """{
  "credentials": {
    "app.terraform.io": {
      "token": "{V}"
    }
  }
}
""",
        "h7_tfc",
        True,
    ),
    (
        "scripts/fingerprints.txt",
        """# Known host keys for the deploy targets (checked by scripts/deploy.sh)
web-1.stitchlabs.io {V}
web-2.stitchlabs.io {V2}
""",
        "h7_fingerprint",
        False,
    ),
]
