"""The fourth held-out part of the evaluation corpus, written blind.

Its author read only ``evalset.py`` (the builder and the base value generators) and
``evalscore.py`` (how labels are scored): never the scanner, its rules, its tests or the
other parts' templates. The templates follow what real repositories leak, and what looks
like a leak but is not, across many languages and file kinds. Every template has one or
more ``{V}``/``{V2}``/``{IV}`` slots (see ``evalset.SLOT``), each one labelled value of
the template's kind; a template is wholly credentials (positive) or wholly look-alikes.
Label rule: positive = a concrete value that would grant access if it were live (weak
test passwords included); negative = anything else.

It is scored once, by totals only, and never edited to fit results.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import string
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import evalset

#: Templates use several value slots per file (``evalset._render_slots``).
MULTI_SLOT = True

HEX = "0123456789abcdef"
ALNUM = evalset.ALNUM
URLSAFE = ALNUM + "_-"

#: BIP-39 words (a small subset of the English list), for wallet seed phrases.
_BIP39 = [
    "abandon",
    "ability",
    "absorb",
    "access",
    "acoustic",
    "actress",
    "adapt",
    "advice",
    "aerobic",
    "afford",
    "agent",
    "airport",
    "alarm",
    "album",
    "alley",
    "amateur",
    "anchor",
    "ankle",
    "antique",
    "apology",
    "arctic",
    "armor",
    "arrow",
    "aspect",
    "athlete",
    "auction",
    "autumn",
    "avocado",
    "bachelor",
    "balcony",
    "bamboo",
    "banner",
    "barrel",
    "beacon",
    "bicycle",
    "blanket",
    "bonus",
    "bracket",
    "brisk",
    "bubble",
    "cabin",
    "cactus",
    "canyon",
    "carbon",
    "casino",
    "cereal",
    "chimney",
    "circle",
    "clinic",
    "coconut",
    "copper",
    "crater",
]


class Heldout4Values(evalset.Values):
    """Value generators of the fourth held-out part: its own words and service users, and
    ``h4_`` generators for shapes the base class does not make."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "hazelnut",
            "cinder",
            "mosaic",
            "puffin",
            "sequoia",
            "driftwood",
            "lilac",
            "tamarind",
            "otter",
        ]
        self.users = [
            "warehouse",
            "kiosk",
            "telemetry",
            "auditor",
            "fulfil",
            "render",
            "archiver",
            "pricing",
        ]

    # -- helpers --------------------------------------------------------------------
    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n)).decode()

    def _b64url(self, n: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(n)).decode().rstrip("=")

    def _host(self) -> str:
        return self.pick(
            [
                "10.12.4.31",
                "pg-primary.internal",
                "db01.prod.lan",
                "orders-db.c7xq2lmz0hvp.eu-central-1.rds.amazonaws.com",
                "localhost",
                "172.19.0.4",
                "mysql.svc.cluster.local",
            ]
        )

    def _doc_host(self) -> str:
        return self.pick(
            [
                "db.example.com",
                "broker.example.org",
                "cache.example.net",
                "smtp.example",
                "mq.internal.test",
                "api.invalid",
            ]
        )

    def _pem_rows(self, lines: int) -> list[str]:
        body = self._b64(48 * lines)
        return [body[i : i + 64] for i in range(0, len(body), 64)]

    # -- positives --------------------------------------------------------------------
    def h4_user_pass(self) -> str:
        return f"{self.pick(self.users)}:{self.url_password()}"

    def h4_db_uri(self) -> str:
        scheme = self.pick(["postgresql", "postgres", "mysql", "mariadb", "mssql"])
        db = self.pick(self.users)
        return f"{scheme}://{db}:{self.url_password()}@{self._host()}/{db}"

    def h4_mongo_uri(self) -> str:
        user = self.pick(self.users)
        cluster = self.s(5, string.ascii_lowercase + string.digits)
        return (
            f"mongodb+srv://{user}:{self.url_password()}@cluster0.{cluster}.mongodb.net/"
            f"{user}?retryWrites=true&w=majority"
        )

    def h4_amqp_uri(self) -> str:
        return f"amqp://{self.pick(self.users)}:{self.url_password()}@{self._host()}:5672/%2F"

    def h4_nats_uri(self) -> str:
        return f"nats://{self.pick(self.users)}:{self.weak_password()}@localhost:4222"

    def h4_mssql_conn(self) -> str:
        return (
            f"Server=tcp:{self._host()},1433;Database={self.pick(self.users)};"
            f"User ID={self.pick(self.users)};Password={self.password()};Encrypt=True;"
        )

    def h4_azure_storage_conn(self) -> str:
        account = self.pick(self.users) + self.s(4, string.digits)
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self.azure_key()};EndpointSuffix=core.windows.net"
        )

    def h4_azure_sas(self) -> str:
        sig = self._b64(32).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        account = self.pick(self.users) + self.s(4, string.digits)
        return (
            f"https://{account}.blob.core.windows.net/exports?sv=2022-11-02&ss=b&srt=co"
            f"&sp=rwdlac&se=2027-03-01T00:00:00Z&st=2025-01-01T00:00:00Z&spr=https&sig={sig}"
        )

    def h4_gitlab_runner(self) -> str:
        return "glrt-" + self.s(20, URLSAFE)

    def h4_linear(self) -> str:
        return "lin_api_" + self.s(40)

    def h4_pulumi(self) -> str:
        return "pul-" + self.s(40, HEX)

    def h4_dynatrace(self) -> str:
        up = string.ascii_uppercase + string.digits
        return f"dt0c01.{self.s(24, up)}.{self.s(64, up)}"

    def h4_rubygems(self) -> str:
        return "rubygems_" + self.s(48, HEX)

    def h4_fcm_server_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h4_google_oauth_secret(self) -> str:
        return "GOCSPX-" + self.s(28, URLSAFE)

    def h4_nkey_operator(self) -> str:
        raw = bytes([(18 << 3) | (112 >> 5), (112 & 31) << 3]) + self.rng.randbytes(32)
        raw += binascii.crc_hqx(raw, 0).to_bytes(2, "little")
        return base64.b32encode(raw).decode().rstrip("=")

    def h4_jwk_rsa_d(self) -> str:
        return self._b64url(256)

    def h4_pgp_private(self) -> str:
        check = self._b64(3)
        return (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
            + "\n".join(self._pem_rows(14))
            + f"\n={check}\n-----END PGP PRIVATE KEY BLOCK-----"
        )

    def h4_putty_key(self) -> str:
        public = self._pem_rows(2)
        private = self._pem_rows(1)
        return (
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n"
            f"Comment: {self.pick(self.users)}@build-host\n"
            f"Public-Lines: {len(public)}\n" + "\n".join(public) + "\n"
            f"Private-Lines: {len(private)}\n" + "\n".join(private) + "\n"
            f"Private-MAC: {self.s(64, HEX)}"
        )

    def h4_mnemonic(self) -> str:
        return " ".join(self.pick(_BIP39) for _ in range(12))

    def h4_laravel_key(self) -> str:
        return "base64:" + self._b64(32)

    def h4_fernet(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(32)).decode()

    def h4_curl_basic(self) -> str:
        return "Basic " + self.basic()

    def h4_sa_token(self) -> str:
        def part(obj: str) -> str:
            return base64.urlsafe_b64encode(obj.encode()).decode().rstrip("=")

        header = part('{"alg":"RS256","kid":"' + self.s(43, URLSAFE) + '"}')
        body = part(
            '{"iss":"kubernetes/serviceaccount","kubernetes.io/serviceaccount/namespace":"'
            + self.pick(self.users)
            + '","sub":"system:serviceaccount:'
            + self.pick(self.users)
            + ':deployer"}'
        )
        return f"{header}.{body}.{self._b64url(256)}"

    def h4_aws_pair_json(self) -> str:
        return f'"AccessKeyId": "{self.aws_id()}",\n"SecretAccessKey": "{self.aws_secret()}",'

    # -- negatives --------------------------------------------------------------------
    def h4_placeholder(self) -> str:
        return self.pick(
            [
                "<YOUR_TOKEN_HERE>",
                "${DATABASE_PASSWORD}",
                "{{ postgres_password }}",
                "###SMTP_PASSWORD###",
                "xxxxxxxxxxxxxxxxxxxx",
                "**********",
                "<paste-your-key>",
                "${{ secrets.DEPLOY_KEY }}",
                "{{ .Values.auth.token }}",
                "${API_SECRET:-}",
                "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX",
                "###API_TOKEN###",
            ]
        )

    def h4_changeme(self) -> str:
        return self.pick(["changeme", "change-me", "CHANGE_ME", "changeme123"])

    def h4_example_uri(self) -> str:
        scheme = self.pick(["postgres", "mysql", "amqp", "redis", "mongodb", "smtp"])
        return f"{scheme}://{self.pick(self.users)}:{self.url_password()}@{self._doc_host()}/app"

    def h4_aws_doc_pair(self) -> str:
        return (
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )

    def h4_i18n(self) -> str:
        return self.pick(
            [
                "Salasana on väärä",
                "A jelszó túl rövid",
                "Heslo musí mít alespoň 8 znaků",
                "Kata sandi tidak cocok",
                "Parola este incorectă",
                "パスワードをお忘れですか？",  # noqa: RUF001
                "비밀번호를 다시 입력하세요",
                "Գաղտնաբառը սխալ է",
                "პაროლი არასწორია",
                "Adgangskoden er udløbet",
            ]
        )

    def h4_version(self) -> str:
        return self.pick(
            ["4.18.2", "v1.32.0-rc.1", "2.0.0+build.20240611", "3.12.4", "0.9.17-beta.3"]
        )

    def h4_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h4_woff_b64(self) -> str:
        return (
            "data:font/woff2;base64," + base64.b64encode(b"wOF2" + self.rng.randbytes(180)).decode()
        )

    def h4_jwt_io(self) -> str:
        return (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9l"
            "IiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        )

    def h4_twilio_sid(self) -> str:
        return "AC" + self.s(32, HEX)

    def h4_masked(self) -> str:
        return self.pick(
            [
                "sk_live_" + "*" * 20 + self.s(4),
                "ghp_" + "*" * 36,
                "****" + self.s(4, string.digits),
                "••••••••",
                "AKIA****************",
                "[MASKED]",
            ]
        )

    def h4_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def h4_tf_zh(self) -> str:
        return "zh:" + self.s(64, HEX)

    def h4_uuid_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h4_ui_text(self) -> str:
        return self.pick(
            [
                "Enter your password",
                "Forgot your password?",
                "Your API key has been rotated",
                "Token expired, please sign in again",
                "Passwords must match",
                "Show secret key",
            ]
        )

    def h4_k8s_ref(self) -> str:
        return self.pick(["db-credentials", "stripe-api", "registry-auth", "smtp-relay"])

    def h4_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["STRIPE_SECRET_KEY"]',
                'os.getenv("GITHUB_TOKEN", "")',
                'env.str("DATABASE_PASSWORD")',
                'config("SECRET_KEY")',
                'secrets_client.get_secret_value(SecretId="prod/api")["SecretString"]',
            ]
        )

    def h4_jvm_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("DB_PASSWORD")',
                'System.getProperty("api.token")',
                'env.getProperty("spring.datasource.password")',
                'props.getProperty("smtp.password")',
            ]
        )

    def h4_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("API_KEY")',
                'configuration["Smtp:Password"]',
                'builder.Configuration.GetConnectionString("Default")',
                '(await secretClient.GetSecretAsync("db-password")).Value.Value',
            ]
        )

    def h4_spring_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${vcap.services.db.credentials.password}",
                "${SMTP_PASS:}",
                "ENC(${JASYPT_DB})",
            ]
        )

    def h4_shell_ref(self) -> str:
        return self.pick(
            [
                '"$REGISTRY_PASSWORD"',
                '"${NPM_TOKEN}"',
                '"$(vault kv get -field=password secret/db)"',
                '"$(cat /run/secrets/api_token)"',
                '"$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"',
            ]
        )

    def h4_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:API_TOKEN",
                "(Get-Secret -Name DbPassword -AsPlainText)",
                "$Credential.GetNetworkCredential().Password",
                "Read-Host -AsSecureString",
            ]
        )

    def h4_nist_nonce(self) -> str:
        return self.s(24, HEX)

    def h4_deepl(self) -> str:
        return self.uuid_key() + ":fx"

    def h4_curl_placeholder(self) -> str:
        return self.pick(
            [
                '"$CI_USER:$CI_TOKEN"',
                "<username>:<password>",
                '"${USER}:${API_TOKEN}"',
                "admin:<your-password>",
            ]
        )

    def h4_filtered(self) -> str:
        return self.pick(
            ["<AUTHORIZATION>", "FILTERED", "Bearer <TOKEN>", "**REDACTED**", "Bearer REDACTED"]
        )

    def h4_flag_key(self) -> str:
        return self.pick(
            [
                "checkout.new-flow",
                "search_v2_enabled",
                "ui.dark_mode",
                "billing-portal",
                "beta.kiosk_offline",
            ]
        )

    def h4_small_seed(self) -> str:
        return self.pick(["42", "1337", "20240611", "0", "7"])

    def h4_gha_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.NPM_TOKEN }}",
                "${{ secrets.GITHUB_TOKEN }}",
                "${{ steps.app-token.outputs.token }}",
            ]
        )

    def h4_ci_ref(self) -> str:
        return self.pick(
            ["$DOCKERHUB_PASSWORD", "${DOCKER_PASS}", "$CI_JOB_TOKEN", "$REGISTRY_PASSWORD"]
        )

    def h4_azdo_ref(self) -> str:
        return self.pick(["$(DbPassword)", "$(System.AccessToken)", "$(registryPassword)"])

    def h4_cred_id(self) -> str:
        return self.pick(["sonar-token", "npm-publish", "nexus-creds", "github-app", "deploy-ssh"])

    def h4_ansible_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_postgresql_password }}",
                "{{ lookup('env', 'DB_PASSWORD') }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret/db:password') }}",
            ]
        )

    def h4_xml_token(self) -> str:
        return self.pick(
            ["#{DbPassword}#", "__DB_PASSWORD__", "$(DbPassword)", "@@SMTP_PASSWORD@@"]
        )

    def h4_npm_ref(self) -> str:
        return self.pick(["${NPM_TOKEN}", "${NODE_AUTH_TOKEN}", "${GITHUB_PACKAGES_TOKEN}"])

    def h4_ex_ref(self) -> str:
        return self.pick(
            [
                'System.fetch_env!("DB_PASSWORD")',
                '{:system, "DB_PASSWORD"}',
                'System.get_env("DB_PASSWORD")',
            ]
        )

    def h4_swift_ref(self) -> str:
        return self.pick(
            [
                'ProcessInfo.processInfo.environment["MAPS_KEY"] ?? ""',
                'Bundle.main.object(forInfoDictionaryKey: "MAPS_KEY") as? String ?? ""',
                'try Keychain.read(service: "maps", account: "key")',
            ]
        )

    def h4_scala_ref(self) -> str:
        return self.pick(
            [
                'sys.env("DB_PASSWORD")',
                'config.getString("db.password")',
                'sys.env.getOrElse("DB_PASSWORD", "")',
            ]
        )

    def h4_perl_ref(self) -> str:
        return self.pick(
            ["$ENV{REPORTS_DB_PASS}", "$cfg->{db}{password}", "read_secret('reports-db')"]
        )


#: (path, text, value kind, is a credential); every slot of a template is one labelled value.
TEMPLATES: list[evalset.Template] = [
    # ---------------------------------------------------------------- credentials ------
    (
        "deploy/.env.production",
        """\
NODE_ENV=production
PORT=8080
DATABASE_URL={V}
LOG_LEVEL=info
""",
        "h4_db_uri",
        True,
    ),
    (
        "clients/warehouse_client.py",
        """\
import requests

BASE = "https://api.warehouse-partner.io/v2"


def list_orders(session: requests.Session) -> list[dict]:
    resp = session.get(
        f"{BASE}/orders",
        headers={"Authorization": "Bearer {V}", "Accept": "application/json"},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["items"]
""",
        "bearer",
        True,
    ),
    (
        "internal/pricing/client.go",
        """\
package pricing

import "net/http"

func (c *Client) newRequest(method, url string) (*http.Request, error) {
\treq, err := http.NewRequest(method, url, nil)
\tif err != nil {
\t\treturn nil, err
\t}
\treq.Header.Set("Authorization", "Basic {V}")
\treq.Header.Set("Accept", "application/json")
\treturn req, nil
}
""",
        "basic",
        True,
    ),
    (
        "docs/ci-trigger.md",
        """\
# Triggering a build by hand

```sh
curl -X POST https://ci.acme-corp.io/api/v1/builds \\
  -u {V} \\
  -H 'Content-Type: application/json' \\
  -d '{"branch": "main"}'
```
""",
        "h4_user_pass",
        True,
    ),
    (
        "scripts/release-notes.sh",
        """\
#!/usr/bin/env bash
set -euo pipefail
repo="acme-corp/kiosk"
curl -sS \\
  -H "Accept: application/vnd.github+json" \\
  -H "Authorization: token {V}" \\
  "https://api.github.com/repos/${repo}/releases/latest" | jq -r .body
""",
        "github",
        True,
    ),
    (
        "tests/cassettes/test_sync_issues.yaml",
        """\
interactions:
- request:
    body: '{"query": "{ viewer { id } }"}'
    headers:
      Accept:
      - application/json
      Authorization:
      - {V}
      User-Agent:
      - python-requests/2.31.0
    method: POST
    uri: https://api.linear.app/graphql
  response:
    body:
      string: '{"data": {"viewer": {"id": "me"}}}'
    status:
      code: 200
      message: OK
version: 1
""",
        "h4_linear",
        True,
    ),
    (
        "spec/fixtures/vcr_cassettes/shopify_orders.yml",
        """\
---
http_interactions:
- request:
    method: get
    uri: https://kiosk-store.myshopify.com/admin/api/2024-01/orders.json
    headers:
      Accept-Encoding:
      - gzip;q=1.0,deflate;q=0.6,identity;q=0.3
      X-Shopify-Access-Token:
      - {V}
  response:
    status:
      code: 200
      message: OK
recorded_with: VCR 6.2.0
""",
        "shopify",
        True,
    ),
    (
        "config/translate.json",
        """\
{
  "provider": "deepl",
  "key": "{V}",
  "target_lang": "DE",
  "formality": "prefer_less"
}
""",
        "h4_deepl",
        True,
    ),
    (
        "bots/tweet_release.py",
        """\
import tweepy

client = tweepy.Client(
    consumer_key="{V}",
    consumer_secret=CONSUMER_SECRET,
    access_token=ACCESS_TOKEN,
    access_token_secret=ACCESS_SECRET,
)
client.create_tweet(text="Release is out")
""",
        "twitter_key",
        True,
    ),
    (
        "config/initializers/twitter.rb",
        """\
TWITTER = Twitter::REST::Client.new do |config|
  config.consumer_key        = ENV["TWITTER_KEY"]
  config.consumer_secret     = "{V}"
  config.access_token        = ENV["TWITTER_ACCESS_TOKEN"]
end
""",
        "twitter_secret",
        True,
    ),
    (
        "src/Kiosk.Api/appsettings.Production.json",
        """\
{
  "AzureAd": {
    "Instance": "https://login.microsoftonline.com/",
    "Domain": "acmecorp.onmicrosoft.com",
    "ClientSecret": "{V}",
    "CallbackPath": "/signin-oidc"
  },
  "Logging": { "LogLevel": { "Default": "Warning" } }
}
""",
        "azure_client_secret",
        True,
    ),
    (
        "public/wp-config.php",
        """\
<?php
define( 'DB_NAME', 'wordpress' );
define( 'DB_USER', 'wp' );
define( 'DB_HOST', 'localhost' );

define( 'AUTH_KEY',         '{V}' );
define( 'SECURE_AUTH_KEY',  '{V2}' );
define( 'NONCE_KEY',        '{V3}' );
define( 'NONCE_SALT',       '{V4}' );

$table_prefix = 'wp_';
""",
        "wp_salt",
        True,
    ),
    (
        "deploy/nats/telemetry.creds",
        """\
************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{V}
------END USER NKEY SEED------

*************************************************************
""",
        "nkey",
        True,
    ),
    (
        "ops/nsc/operator.toml",
        """\
[operator]
name = "acme"
service_url = "nats://nats.internal:4222"
seed = "{V}"
""",
        "h4_nkey_operator",
        True,
    ),
    (
        "config/jwks.json",
        """\
{
  "keys": [
    {
      "kty": "EC",
      "crv": "P-256",
      "kid": "signing-2024-06",
      "use": "sig",
      "x": "C4LSD8pENy11c5lNiT-2UEonK2T5Tr1JYU0KZSZRaCs",
      "y": "klqjXa3AUwMt4LrQH6C9jsZR2-UCTocEFPNWI4VJrug",
      "d": "{V}"
    }
  ]
}
""",
        "jwk_d",
        True,
    ),
    (
        "auth/keys/rsa-private.jwk.json",
        """\
{"kty":"RSA","kid":"token-signer","alg":"RS256","e":"AQAB","d":"{V}"}
""",
        "h4_jwk_rsa_d",
        True,
    ),
    (
        ".env.local",
        """\
# Heroku platform API
HEROKU_API_KEY={V}
HEROKU_APP=kiosk-staging
""",
        "uuid_key",
        True,
    ),
    (
        "web/src/api/telemetry.ts",
        """\
const TELEMETRY_URL = "https://ingest.telemetry-cloud.io/v1/events";

export async function sendEvent(name: string, props: Record<string, unknown>) {
  await fetch(TELEMETRY_URL, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-API-Key": "{V}",
    },
    body: JSON.stringify({ name, props }),
  });
}
""",
        "uuid_key",
        True,
    ),
    (
        "scripts/deploy-chart.sh",
        """\
#!/bin/sh
helm upgrade --install kiosk ./charts/kiosk \\
  --namespace kiosk \\
  --set image.tag="$GIT_SHA" \\
  --set postgresql.auth.password={V} \\
  --wait
""",
        "password",
        True,
    ),
    (
        "README.md",
        """\
# payments-sandbox

## Configuration

Create `.env` with:

```
STRIPE_SECRET_KEY={V}
STRIPE_WEBHOOK_URL=http://localhost:4242/webhook
```

Then run `npm start`.
""",
        "stripe",
        True,
    ),
    (
        "docs/setup.md",
        """\
## Sentry releases

Add this to your shell profile so `sentry-cli` can upload source maps:

    SENTRY_AUTH_TOKEN={V}
    SENTRY_ORG=acme
""",
        "sentry_user",
        True,
    ),
    (
        "netlify.toml",
        """\
[build]
  command = "npm run build"
  publish = "dist"

[build.environment]
  NODE_VERSION = "20"
  CONTENTFUL_MANAGEMENT_TOKEN = "{V}"
""",
        "api_key",
        True,
    ),
    (
        "tests/test_login.py",
        """\
import pytest

from app.models import User


@pytest.fixture
def user(db):
    return User.objects.create_user(username="auditor", password="{V}")


def test_login(client, user):
    assert client.login(username="auditor", password="{V}")
""",
        "weak_password",
        True,
    ),
    (
        "src/__tests__/auth.test.js",
        """\
const request = require("supertest");
const app = require("../app");

describe("POST /login", () => {
  it("accepts valid credentials", async () => {
    const res = await request(app)
      .post("/login")
      .send({ email: "kiosk@acme-corp.io", password: "{V}" });
    expect(res.status).toBe(200);
  });
});
""",
        "weak_password",
        True,
    ),
    (
        "internal/bus/bus_test.go",
        """\
package bus

import "testing"

func TestPublish(t *testing.T) {
\tb, err := Dial("{V}")
\tif err != nil {
\t\tt.Skip("nats not running")
\t}
\tdefer b.Close()
}
""",
        "h4_nats_uri",
        True,
    ),
    (
        "tests/certs/bundle.pem",
        """\
# server, client and intermediate keys for the mTLS tests
{V}
{V2}
{V3}
""",
        "pkcs8_key",
        True,
    ),
    (
        "charts/kiosk/values-prod.yaml",
        """\
replicaCount: 3
ingress:
  enabled: true
  hosts:
    - kiosk.acme-corp.io
tls:
  crt: |
    -----BEGIN CERTIFICATE-----
    MIIBszCCAVmgAwIBAgIUQ3hZ
    -----END CERTIFICATE-----
  key: |
    {IV}
""",
        "ec_key",
        True,
    ),
    (
        "deploy/ssh/deploy_key",
        """\
{V}
""",
        "openssh_key",
        True,
    ),
    (
        "ops/keys/release-signing.asc",
        """\
{V}
""",
        "h4_pgp_private",
        True,
    ),
    (
        "tools/winscp/archiver.ppk",
        """\
{V}
""",
        "h4_putty_key",
        True,
    ),
    (
        "config/firebase-adminsdk.json",
        """\
{
  "type": "service_account",
  "project_id": "kiosk-prod-4411",
  "private_key": "{V}",
  "client_email": "firebase-adminsdk@kiosk-prod-4411.iam.gserviceaccount.com",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
        "gcp_private_key",
        True,
    ),
    (
        "k8s/base/secret.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: pricing-db
  namespace: pricing
type: Opaque
stringData:
  username: pricing
  password: {V}
""",
        "password",
        True,
    ),
    (
        "k8s/overlays/prod/registry-secret.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: smtp-relay
type: Opaque
data:
  SMTP_PASSWORD: {V}
""",
        "b64_password",
        True,
    ),
    (
        ".kube/config",
        """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://k8s.prod.acme-corp.io:6443
  name: prod
contexts:
- context:
    cluster: prod
    user: deployer
  name: prod
current-context: prod
users:
- name: deployer
  user:
    token: {V}
""",
        "h4_sa_token",
        True,
    ),
    (
        "ci/kubeconfig-staging.yaml",
        """\
apiVersion: v1
kind: Config
users:
- name: ci
  user:
    client-key-data: {V}
""",
        "b64_pem",
        True,
    ),
    (
        ".docker/config.json",
        """\
{
  "auths": {
    "registry.acme-corp.io": {
      "auth": "{V}"
    }
  },
  "credsStore": ""
}
""",
        "basic",
        True,
    ),
    (
        "home/.netrc",
        """\
machine git.acme-corp.io
  login archiver
  password {V}
""",
        "password",
        True,
    ),
    (
        ".npmrc",
        """\
registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
save-exact=true
""",
        "npm",
        True,
    ),
    (
        ".pypirc",
        """\
[distutils]
index-servers =
    pypi

[pypi]
username = __token__
password = {V}
""",
        "pypi",
        True,
    ),
    (
        ".gem/credentials",
        """\
---
:rubygems_api_key: {V}
""",
        "h4_rubygems",
        True,
    ),
    (
        "docker-compose.yml",
        """\
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: fulfil
      POSTGRES_PASSWORD: {V}
    ports:
      - "5432:5432"
  app:
    build: .
    depends_on: [db]
""",
        "password",
        True,
    ),
    (
        "Dockerfile",
        """\
FROM node:20-alpine
WORKDIR /app
ARG NPM_TOKEN={V}
RUN echo "//registry.npmjs.org/:_authToken=${NPM_TOKEN}" > .npmrc && npm ci && rm .npmrc
COPY . .
CMD ["node", "server.js"]
""",
        "npm",
        True,
    ),
    (
        "worker/Dockerfile",
        """\
FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \\
    OPENAI_API_KEY={V} \\
    WORKERS=4
COPY . /srv
CMD ["python", "-m", "worker"]
""",
        "openai",
        True,
    ),
    (
        ".github/workflows/deploy.yml",
        """\
name: deploy
on:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: ubuntu-latest
    env:
      DIGITALOCEAN_ACCESS_TOKEN: {V}
    steps:
      - uses: actions/checkout@v4
      - run: doctl apps create-deployment "$APP_ID"
""",
        "digitalocean",
        True,
    ),
    (
        ".gitlab-ci.yml",
        """\
variables:
  DOCKER_DRIVER: overlay2
  PULUMI_ACCESS_TOKEN: "{V}"

deploy:
  stage: deploy
  image: pulumi/pulumi:3.100.0
  script:
    - pulumi up --yes --stack prod
""",
        "h4_pulumi",
        True,
    ),
    (
        "ops/gitlab-runner/config.toml",
        """\
concurrent = 4

[[runners]]
  name = "render-runner-01"
  url = "https://gitlab.acme-corp.io/"
  token = "{V}"
  executor = "docker"
  [runners.docker]
    image = "alpine:3.19"
""",
        "h4_gitlab_runner",
        True,
    ),
    (
        ".circleci/config.yml",
        """\
version: 2.1
jobs:
  test:
    docker:
      - image: cimg/python:3.12
        auth:
          username: render
          password: {V}
    steps:
      - checkout
      - run: pytest
""",
        "password",
        True,
    ),
    (
        "Jenkinsfile",
        """\
pipeline {
    agent any
    environment {
        SONAR_TOKEN = 'squ_{V}'
    }
    stages {
        stage('Scan') {
            steps {
                sh 'sonar-scanner -Dsonar.login=$SONAR_TOKEN'
            }
        }
    }
}
""",
        "git_sha",
        True,
    ),
    (
        "azure-pipelines.yml",
        """\
trigger:
  - main
pool:
  vmImage: ubuntu-latest
variables:
  storageConnection: '{V}'
steps:
  - script: az storage blob upload-batch -d exports -s dist --connection-string "$(storageConnection)"
""",
        "h4_azure_storage_conn",
        True,
    ),
    (
        "bitbucket-pipelines.yml",
        """\
image: atlassian/default-image:4
pipelines:
  branches:
    main:
      - step:
          name: Notify
          script:
            - curl -X POST -H 'Content-type: application/json' --data '{"text":"deployed"}' {V}
""",
        "slack_webhook",
        True,
    ),
    (
        "inventory/hosts.ini",
        """\
[web]
web01.prod.lan ansible_host=10.12.4.20
web02.prod.lan ansible_host=10.12.4.21

[web:vars]
ansible_user=deploy
ansible_ssh_pass={V}
ansible_become=true
""",
        "password",
        True,
    ),
    (
        "group_vars/db/main.yml",
        """\
---
postgresql_version: 16
postgresql_users:
  - name: telemetry
    password: "{V}"
    role_attr_flags: LOGIN
postgresql_databases:
  - name: telemetry
""",
        "password",
        True,
    ),
    (
        "notebooks/summarise.ipynb",
        """\
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import anthropic\\n",
    "client = anthropic.Anthropic(api_key=\\"{V}\\")\\n"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "anthropic",
        True,
    ),
    (
        "notebooks/embeddings.ipynb",
        """\
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "from huggingface_hub import login\\n",
    "login(token=\\"{V}\\")"
   ]
  }
 ],
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "huggingface",
        True,
    ),
    (
        "logs/app-2024-06-11.log",
        """\
2024-06-11T09:14:02Z INFO  starting worker pid=4411
2024-06-11T09:14:02Z DEBUG connecting to {V}
2024-06-11T09:14:03Z INFO  connected in 212ms
""",
        "h4_amqp_uri",
        True,
    ),
    (
        "logs/debug.log",
        """\
[2024-03-02 11:20:41] DEBUG http: POST https://api.sendgrid.com/v3/mail/send
[2024-03-02 11:20:41] DEBUG http: header Authorization: Bearer {V}
[2024-03-02 11:20:42] INFO  mail queued id=9f2c
""",
        "sendgrid",
        True,
    ),
    (
        "db/seeds/001_users.sql",
        """\
INSERT INTO users (id, username, email, password, is_admin) VALUES
  (1, 'auditor', 'auditor@acme-corp.io', '{V}', TRUE),
  (2, 'kiosk', 'kiosk@acme-corp.io', '{V2}', FALSE);
""",
        "weak_password",
        True,
    ),
    (
        "tests/fixtures/users.json",
        """\
[
  {"model": "accounts.user", "pk": 1, "fields": {"username": "otter", "raw_password": "{V}"}},
  {"model": "accounts.user", "pk": 2, "fields": {"username": "lilac", "raw_password": "{V2}"}}
]
""",
        "weak_password",
        True,
    ),
    (
        "src/main/resources/application-prod.properties",
        """\
spring.datasource.url=jdbc:postgresql://pg-primary.internal:5432/pricing
spring.datasource.username=pricing
spring.datasource.password={V}
spring.jpa.hibernate.ddl-auto=validate
""",
        "password",
        True,
    ),
    (
        "src/main/resources/application.yml",
        """\
spring:
  mail:
    host: smtp.mailgun.org
    port: 587
    username: postmaster@mg.acme-corp.io
    password: {V}
""",
        "mailgun",
        True,
    ),
    (
        "settings.xml",
        """\
<settings>
  <servers>
    <server>
      <id>acme-releases</id>
      <username>archiver</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
        "password",
        True,
    ),
    (
        "Web.config",
        """\
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="Default" connectionString="{V}" providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="Environment" value="Production" />
  </appSettings>
</configuration>
""",
        "h4_mssql_conn",
        True,
    ),
    (
        "infra/main.tf",
        """\
provider "github" {
  owner = "acme-corp"
  token = "{V}"
}

resource "github_repository" "kiosk" {
  name       = "kiosk"
  visibility = "private"
}
""",
        "github_fine",
        True,
    ),
    (
        "infra/terraform.tfvars",
        """\
region          = "eu-central-1"
datadog_api_key = "{V}"
environment     = "prod"
""",
        "hex32",
        True,
    ),
    (
        "infra/aws/credentials",
        """\
[default]
region = eu-central-1

[deploy]
{V}
""",
        "aws_ini_pair",
        True,
    ),
    (
        "tests/fixtures/sts_assume_role.json",
        """\
{
  "Credentials": {
    {IV}
    "Expiration": "2024-06-11T10:14:02Z"
  }
}
""",
        "h4_aws_pair_json",
        True,
    ),
    (
        "src/main/java/io/acme/pricing/SlackNotifier.java",
        """\
package io.acme.pricing;

import com.slack.api.Slack;

public final class SlackNotifier {
    private static final String BOT_TOKEN = "{V}";

    public void post(String channel, String text) throws Exception {
        Slack.getInstance().methods(BOT_TOKEN).chatPostMessage(r -> r.channel(channel).text(text));
    }
}
""",
        "slack",
        True,
    ),
    (
        "src/main/java/io/acme/kiosk/PaymentsClient.java",
        """\
HttpRequest request = HttpRequest.newBuilder()
        .uri(URI.create("https://connect.squareup.com/v2/payments"))
        .header("Square-Version", "2024-05-15")
        .header("Authorization", "Bearer {V}")
        .GET()
        .build();
""",
        "square",
        True,
    ),
    (
        "app/src/main/java/io/acme/kiosk/Config.kt",
        """\
package io.acme.kiosk

object Config {
    const val API_BASE = "https://api.acme-corp.io"
    private const val FCM_SERVER_KEY = "{V}"
    const val TIMEOUT_MS = 15_000L
}
""",
        "h4_fcm_server_key",
        True,
    ),
    (
        "src/Fulfil.Worker/Program.cs",
        """\
using System.Net;
using System.Net.Mail;

var smtp = new SmtpClient("smtp.office365.com", 587)
{
    EnableSsl = true,
    Credentials = new NetworkCredential("fulfil@acme-corp.io", "{V}"),
};
await smtp.SendMailAsync("fulfil@acme-corp.io", "ops@acme-corp.io", "daily", "ok");
""",
        "password",
        True,
    ),
    (
        "config/services.php",
        """\
<?php

return [
    'mailchimp' => [
        'key' => '{V}',
        'list_id' => env('MAILCHIMP_LIST_ID'),
    ],
    'ses' => [
        'region' => 'eu-west-1',
    ],
];
""",
        "mailchimp",
        True,
    ),
    (
        "laravel/.env",
        """\
APP_NAME=Kiosk
APP_ENV=production
APP_KEY={V}
APP_DEBUG=false
""",
        "h4_laravel_key",
        True,
    ),
    (
        "webhooks/stripe_handler.py",
        """\
import stripe
from flask import Flask, request

app = Flask(__name__)
endpoint_secret = "{V}"


@app.post("/webhook")
def webhook():
    event = stripe.Webhook.construct_event(
        request.data, request.headers["Stripe-Signature"], endpoint_secret
    )
    return {"received": event["type"]}
""",
        "stripe_whsec",
        True,
    ),
    (
        "Sources/Kiosk/Secrets.swift",
        """\
import Foundation

enum Secrets {
    static let mapsKey = "{V}"
    static let environment = "production"
}
""",
        "google",
        True,
    ),
    (
        "src/main/scala/io/acme/render/Db.scala",
        """\
package io.acme.render

import doobie.Transactor
import cats.effect.IO

object Db {
  val xa = Transactor.fromDriverManager[IO](
    driver = "org.postgresql.Driver",
    url = "jdbc:postgresql://pg-primary.internal:5432/render",
    user = "render",
    password = "{V}",
    logHandler = None
  )
}
""",
        "password",
        True,
    ),
    (
        "config/prod.exs",
        """\
import Config

config :telemetry_app, TelemetryApp.Repo,
  username: "telemetry",
  password: "{V}",
  hostname: "pg-primary.internal",
  pool_size: 10
""",
        "password",
        True,
    ),
    (
        "lib/src/api_keys.dart",
        """\
class ApiKeys {
  static const String telegramBotToken = '{V}';
  static const String baseUrl = 'https://api.telegram.org';
}
""",
        "telegram",
        True,
    ),
    (
        "src/bin/export.rs",
        """\
use reqwest::blocking::Client;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::new();
    let body = client
        .get("https://api.atlassian.com/ex/jira/acme/rest/api/3/myself")
        .basic_auth("archiver@acme-corp.io", Some("{V}"))
        .send()?
        .text()?;
    println!("{}", body);
    Ok(())
}
""",
        "atlassian",
        True,
    ),
    (
        "scripts/Publish-Module.ps1",
        """\
$ErrorActionPreference = 'Stop'
$securePass = ConvertTo-SecureString '{V}' -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential ('ACME\\svc-archiver', $securePass)
Invoke-Command -ComputerName build01 -Credential $cred -ScriptBlock { Get-Service }
""",
        "password",
        True,
    ),
    (
        "scripts/nightly_report.pl",
        """\
#!/usr/bin/perl
use strict;
use warnings;
use DBI;

my $dbh = DBI->connect("DBI:mysql:database=reports;host=10.12.4.31",
    "auditor", "{V}", { RaiseError => 1 });
my $rows = $dbh->selectall_arrayref("SELECT id FROM daily");
""",
        "password",
        True,
    ),
    (
        "docs/source/deployment.rst",
        """\
Deployment
==========

Set the Vault token before running the playbook::

    export VAULT_ADDR=https://vault.acme-corp.io:8200
    export VAULT_TOKEN={V}
    ansible-playbook site.yml
""",
        "vault_token",
        True,
    ),
    (
        "config/mongoid.yml",
        """\
production:
  clients:
    default:
      uri: {V}
      options:
        server_selection_timeout: 5
""",
        "h4_mongo_uri",
        True,
    ),
    (
        "app/settings.py",
        """\
DEBUG = False
ALLOWED_HOSTS = ["kiosk.acme-corp.io"]
SECRET_KEY = "{V}"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://cache.internal:6379/1",
    }
}
""",
        "django_key",
        True,
    ),
    (
        "airflow/airflow.cfg",
        """\
[core]
executor = CeleryExecutor
fernet_key = {V}

[webserver]
base_url = http://airflow.internal:8080
""",
        "h4_fernet",
        True,
    ),
    (
        "services/alerts/teams.py",
        """\
import httpx

WEBHOOK = "{V}"


def notify(text: str) -> None:
    httpx.post(WEBHOOK, json={"text": text}, timeout=5)
""",
        "teams_webhook",
        True,
    ),
    (
        "ops/dynatrace/oneagent.env",
        """\
DT_TENANT=abc12345
DT_API_TOKEN={V}
DT_NETWORK_ZONE=eu
""",
        "h4_dynatrace",
        True,
    ),
    (
        "client_secret.json",
        """\
{"web":{"client_id":"104411223344-k7d2hq9v0sf3m1n8p5r6t4w2y0z1a3b5.apps.googleusercontent.com","project_id":"kiosk-prod","client_secret":"{V}","redirect_uris":["https://kiosk.acme-corp.io/oauth2callback"]}}
""",
        "h4_google_oauth_secret",
        True,
    ),
    (
        "wallet/hardhat.config.js",
        """\
module.exports = {
  solidity: "0.8.24",
  networks: {
    mainnet: {
      url: "https://eth.llamarpc.com",
      accounts: { mnemonic: "{V}" },
    },
  },
};
""",
        "h4_mnemonic",
        True,
    ),
    (
        "sops/age/keys.txt",
        """\
# created: 2024-05-02T10:11:12Z
# public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
{V}
""",
        "age_key",
        True,
    ),
    (
        "scripts/export_blobs.py",
        """\
from azure.storage.blob import ContainerClient

SAS_URL = "{V}"

client = ContainerClient.from_container_url(SAS_URL)
for blob in client.list_blobs():
    print(blob.name)
""",
        "h4_azure_sas",
        True,
    ),
    (
        "docs/api.md",
        """\
## Authentication

```bash
curl https://api.acme-corp.io/v1/stock \\
  -H "Authorization: {V}"
```
""",
        "h4_curl_basic",
        True,
    ),
    (
        ".env.staging",
        """\
GITLAB_API_TOKEN={V}
DANGER_GITLAB_API_TOKEN={V2}
""",
        "gitlab",
        True,
    ),
    # ---------------------------------------------------------------- look-alikes ------
    (
        ".env.example",
        """\
# Copy to .env and fill in
STRIPE_SECRET_KEY={V}
DATABASE_PASSWORD={V2}
PORT=8080
""",
        "h4_placeholder",
        False,
    ),
    (
        "clients/fulfil_client.py",
        """\
import os

import requests

TOKEN = {V}


def fetch(path: str) -> dict:
    resp = requests.get(
        f"https://api.fulfil-partner.io{path}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    return resp.json()
""",
        "h4_py_ref",
        False,
    ),
    (
        "internal/render/client.go",
        """\
package render

import (
\t"net/http"
\t"os"
)

func authorize(req *http.Request) {
\treq.Header.Set("Authorization", "Bearer "+{V})
}
""",
        "tune6_go_ref",
        False,
    ),
    (
        "docs/uploading.md",
        """\
# Uploading artefacts

```sh
curl -X PUT https://artifacts.acme-corp.io/repository/raw/kiosk.tar.gz \\
  -u {V} \\
  --upload-file kiosk.tar.gz
```
""",
        "h4_curl_placeholder",
        False,
    ),
    (
        "scripts/publish.sh",
        """\
#!/usr/bin/env bash
set -euo pipefail
TOKEN={V}
curl -sS \\
  -H "Authorization: Bearer ${TOKEN}" \\
  -F "file=@dist/kiosk.zip" \\
  https://uploads.acme-corp.io/v1/packages
""",
        "h4_shell_ref",
        False,
    ),
    (
        "tests/cassettes/test_list_stock.yaml",
        """\
interactions:
- request:
    body: null
    headers:
      Authorization:
      - {V}
      User-Agent:
      - python-requests/2.31.0
    method: GET
    uri: https://erp.acme-corp.io/api/stock
  response:
    status:
      code: 200
      message: OK
version: 1
""",
        "h4_filtered",
        False,
    ),
    (
        "tests/cassettes/test_create_label.yaml",
        """\
interactions:
- request:
    body: '{"carrier": "dhl"}'
    method: POST
    uri: https://labels.shipping-partner.io/v1/labels
  response:
    headers:
      Content-Type:
      - application/json
      X-Request-Id:
      - {V}
      X-Correlation-Id:
      - {V2}
    status:
      code: 201
      message: Created
version: 1
""",
        "h4_uuid_id",
        False,
    ),
    (
        "config/flags.json",
        """\
{
  "flags": [
    {"key": "{V}", "enabled": true, "rollout": 25},
    {"key": "{V2}", "enabled": false, "rollout": 0}
  ]
}
""",
        "h4_flag_key",
        False,
    ),
    (
        "src/Pricing.Api/appsettings.json",
        """\
{
  "AzureAd": {
    "Instance": "https://login.microsoftonline.com/",
    "ClientId": "{V2}",
    "ClientSecret": "{V}",
    "CallbackPath": "/signin-oidc"
  }
}
""",
        "placeholder3",
        False,
    ),
    (
        "templates/base.html",
        """\
<!doctype html>
<html>
<head>
  <meta http-equiv="Content-Security-Policy" content="script-src 'nonce-{V}'">
  <script nonce="{V}" src="/static/app.js"></script>
</head>
<body></body>
</html>
""",
        "csp_nonce",
        False,
    ),
    (
        "tests/crypto/test_aead_vectors.py",
        """\
from app.crypto import open_box

# RFC 8439 style known-answer vector: public test data, not a secret
NONCE = bytes.fromhex("{V}")


def test_open_box_rejects_tampered_tag(vector_key):
    assert open_box(vector_key, NONCE, b"\\x00" * 16) is None
""",
        "h4_nist_nonce",
        False,
    ),
    (
        "ml/configs/train.yaml",
        """\
model: resnet50
epochs: 90
batch_size: 256
seed: {V}
optimizer:
  name: sgd
  lr: 0.1
""",
        "h4_small_seed",
        False,
    ),
    (
        "deploy/nats/nats-server.conf",
        """\
port: 4222
authorization {
  users = [
    { nkey: {V} }
    { nkey: {V2} }
  ]
}
""",
        "nkey_public",
        False,
    ),
    (
        "public/.well-known/jwks.json",
        """\
{
  "keys": [
    {
      "kty": "RSA",
      "kid": "token-signer",
      "use": "sig",
      "alg": "RS256",
      "e": "AQAB",
      "n": "{V}"
    }
  ]
}
""",
        "rsa_n",
        False,
    ),
    (
        "infra/azure/provider.tf",
        """\
provider "azurerm" {
  features {}
  tenant_id       = "{V}"
  subscription_id = "{V2}"
}
""",
        "h4_uuid_id",
        False,
    ),
    (
        "logs/access-2024-06-11.log",
        """\
2024-06-11T09:14:02Z INFO request_id={V} method=GET path=/api/stock status=200 ms=41
2024-06-11T09:14:03Z INFO request_id={V2} method=POST path=/api/orders status=201 ms=88
""",
        "h4_uuid_id",
        False,
    ),
    (
        "pyproject.toml",
        """\
[project]
name = "kiosk"
version = "{V}"
requires-python = ">=3.11"
dependencies = ["httpx>=0.27"]
""",
        "h4_version",
        False,
    ),
    (
        "web/src/locales/messages.json",
        """\
{
  "PASSWORD_INVALID": "{V}",
  "PASSWORD_MISMATCH": "{V2}",
  "TOKEN_EXPIRED": "{V3}"
}
""",
        "h4_i18n",
        False,
    ),
    (
        "web/src/i18n/en.ts",
        """\
export const en = {
  passwordLabel: "Password",
  passwordPlaceholder: "{V}",
  apiKeyHint: "{V2}",
};
""",
        "h4_ui_text",
        False,
    ),
    (
        "templates/login.html",
        """\
<form method="post" action="/login">
  <input type="text" name="username" autocomplete="username">
  <input type="password" name="password" placeholder="{V}" autocomplete="current-password">
  <button type="submit">Sign in</button>
</form>
""",
        "h4_ui_text",
        False,
    ),
    (
        "deploy/templates/app.properties.tmpl",
        """\
db.url=jdbc:postgresql://pg-primary.internal:5432/kiosk
db.user=kiosk
db.password={V}
""",
        "hash_marker",
        False,
    ),
    (
        "docs/quickstart.md",
        """\
## First start

The container creates an admin account on first boot:

```yaml
admin_user: admin
admin_password: {V}   # change this on first login
```
""",
        "h4_changeme",
        False,
    ),
    (
        "logs/worker-2024-06-12.log",
        """\
2024-06-12T07:00:01Z INFO  auth configured token={V}
2024-06-12T07:00:01Z INFO  polling queue=exports
""",
        "h4_masked",
        False,
    ),
    (
        "k8s/base/deployment.yaml",
        """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pricing
spec:
  template:
    spec:
      containers:
        - name: pricing
          image: registry.acme-corp.io/pricing:1.4.2
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {V}
                  key: password
""",
        "h4_k8s_ref",
        False,
    ),
    (
        "compose.prod.yml",
        """\
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD_FILE: {V}
    secrets:
      - db_password
secrets:
  db_password:
    file: ./secrets/db_password.txt
""",
        "secret_path",
        False,
    ),
    (
        "services/api/Dockerfile",
        """\
FROM node:20-alpine@{V}
WORKDIR /app
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci
COPY . .
CMD ["node", "server.js"]
""",
        "h4_image_digest",
        False,
    ),
    (
        ".github/workflows/publish.yml",
        """\
name: publish
on:
  release:
    types: [published]
jobs:
  publish:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@{V}
      - uses: actions/setup-node@{V2}
        with:
          node-version: 20
      - run: npm publish
""",
        "git_sha",
        False,
    ),
    (
        ".github/workflows/release.yml",
        """\
name: release
on: push
jobs:
  release:
    runs-on: ubuntu-latest
    steps:
      - run: npm publish
        env:
          NODE_AUTH_TOKEN: {V}
""",
        "h4_gha_ref",
        False,
    ),
    (
        ".circleci/config.yml",
        """\
version: 2.1
jobs:
  build:
    docker:
      - image: cimg/node:20.11
        auth:
          username: render
          password: {V}
    steps:
      - checkout
""",
        "h4_ci_ref",
        False,
    ),
    (
        "ci/Jenkinsfile",
        """\
pipeline {
    agent any
    stages {
        stage('Publish') {
            steps {
                withCredentials([string(credentialsId: '{V}', variable: 'TOKEN')]) {
                    sh 'npm publish --//registry.npmjs.org/:_authToken=$TOKEN'
                }
            }
        }
    }
}
""",
        "h4_cred_id",
        False,
    ),
    (
        "pipelines/azure-pipelines.yml",
        """\
steps:
  - task: Docker@2
    inputs:
      command: login
      containerRegistry: acme-acr
  - script: echo {V} | docker login acmeacr.azurecr.io -u render --password-stdin
""",
        "h4_azdo_ref",
        False,
    ),
    (
        "group_vars/all/main.yml",
        """\
---
postgresql_users:
  - name: pricing
    password: "{V}"
""",
        "h4_ansible_ref",
        False,
    ),
    (
        "group_vars/prod/vault.yml",
        """\
{V}
""",
        "ansible_vault",
        False,
    ),
    (
        "notebooks/eda.ipynb",
        """\
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 7,
   "metadata": {},
   "outputs": [
    {
     "data": {
      "image/png": "{V}",
      "text/plain": ["<Figure size 640x480 with 1 Axes>"]
     },
     "output_type": "display_data"
    }
   ],
   "source": ["df.plot()"]
  }
 ],
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "png_b64",
        False,
    ),
    (
        "db/seeds/002_admins.sql",
        """\
INSERT INTO users (username, email, password_hash) VALUES
  ('auditor', 'auditor@acme-corp.io', '{V}'),
  ('kiosk', 'kiosk@acme-corp.io', '{V2}');
""",
        "bcrypt",
        False,
    ),
    (
        "src/main/resources/application.properties",
        """\
spring.datasource.url=jdbc:postgresql://pg-primary.internal:5432/render
spring.datasource.username=render
spring.datasource.password={V}
""",
        "h4_spring_ref",
        False,
    ),
    (
        "src/Kiosk.Web/Web.Release.config",
        """\
<?xml version="1.0"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <appSettings>
    <add key="SmtpPassword" value="{V}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
  </appSettings>
</configuration>
""",
        "h4_xml_token",
        False,
    ),
    (
        "infra/database.tf",
        """\
resource "aws_db_instance" "render" {
  identifier     = "render"
  engine         = "postgres"
  instance_class = "db.t4g.small"
  username       = "render"
  password       = {V}
}
""",
        "tune6_tf_ref",
        False,
    ),
    (
        "infra/.terraform.lock.hcl",
        """\
provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.54.1"
  constraints = "~> 5.0"
  hashes = [
    "{V}",
    "{V2}",
  ]
}
""",
        "h4_tf_zh",
        False,
    ),
    (
        "ci/kubeconfig.yaml",
        """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {V}
    server: https://k8s.staging.acme-corp.io:6443
  name: staging
users:
- name: ci
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: ["eks", "get-token", "--cluster-name", "staging"]
""",
        "b64_cert",
        False,
    ),
    (
        "docs/netrc.example",
        """\
machine git.acme-corp.io
  login <your-username>
  password {V}
""",
        "h4_placeholder",
        False,
    ),
    (
        "packages/ui/.npmrc",
        """\
@acme:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
""",
        "h4_npm_ref",
        False,
    ),
    (
        "deploy/ssh/authorized_keys",
        """\
{V}
{V2}
""",
        "ssh_public",
        False,
    ),
    (
        "tests/certs/server.crt",
        """\
{V}
""",
        "certificate",
        False,
    ),
    (
        "KEYS",
        """\
This file contains the PGP keys of release managers.

pub   rsa4096 2023-01-09 [SC]
uid   Kiosk Release Manager <release@acme-corp.io>

{V}
""",
        "pgp_public",
        False,
    ),
    (
        "tests/certs/encrypted/keys.pem",
        """\
# passphrase-protected keys for the key-loading tests
{V}
{V2}
""",
        "encrypted_key",
        False,
    ),
    (
        "charts/legacy/values.yaml",
        """\
tls:
  key: |
    {IV}
""",
        "legacy_encrypted_key",
        False,
    ),
    (
        "docs/connections.md",
        """\
# Connection strings

Use a URL of this shape:

    DATABASE_URL={V}
""",
        "h4_example_uri",
        False,
    ),
    (
        "docs/aws.md",
        """\
## Credentials

The AWS documentation's example keys, for reference:

```
{V}
```
""",
        "h4_aws_doc_pair",
        False,
    ),
    (
        "go.sum",
        """\
github.com/nats-io/nats.go v1.36.0 {V}
github.com/nats-io/nats.go v1.36.0/go.mod {V2}
""",
        "gosum_hash",
        False,
    ),
    (
        "Cargo.lock",
        """\
[[package]]
name = "reqwest"
version = "0.12.5"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"
""",
        "h4_sha256",
        False,
    ),
    (
        "web/src/styles/fonts.css",
        """\
@font-face {
  font-family: "Inter";
  src: url("{V}") format("woff2");
  font-display: swap;
}
""",
        "h4_woff_b64",
        False,
    ),
    (
        "docs/auth/jwt.md",
        """\
## Decoding a token

The example token from jwt.io decodes to `{"sub": "1234567890", "name": "John Doe"}`:

```
{V}
```
""",
        "h4_jwt_io",
        False,
    ),
    (
        "support/.env.shared",
        """\
TWILIO_ACCOUNT_SID={V}
TWILIO_REGION=ie1
""",
        "h4_twilio_sid",
        False,
    ),
    (
        "web/src/stripe.ts",
        """\
import { loadStripe } from "@stripe/stripe-js";

export const stripePromise = loadStripe("{V}");
""",
        "stripe_pk",
        False,
    ),
    (
        "web/src/auth/google.ts",
        """\
export const GOOGLE_CLIENT_ID = "{V}";
""",
        "google_client_id",
        False,
    ),
    (
        "deploy/nginx/.htpasswd",
        """\
auditor:{V}
kiosk:{V2}
""",
        "apr1",
        False,
    ),
    (
        "secrets/prod.enc.yaml",
        """\
db:
    password: {V}
    user: {V2}
sops:
    version: 3.8.1
""",
        "sops_value",
        False,
    ),
    (
        "config/secrets.yaml",
        """\
database:
  password: {V}
stripe:
  secret_key: {V2}
""",
        "op_ref",
        False,
    ),
    (
        "docs/errors.md",
        """\
| Code | Meaning |
| ---- | ------- |
| {V} | Password does not meet the policy |
| {V2} | Token expired |
""",
        "error_code",
        False,
    ),
    (
        "scripts/get-token.sh",
        """\
#!/bin/sh
curl -s https://auth.acme-corp.io/oauth/token \\
  -d grant_type={V} \\
  -d client_id=kiosk-cli \\
  -d username="$USER" -d password="$PASSWORD"
""",
        "grant_type",
        False,
    ),
    (
        "scripts/Connect-Db.ps1",
        """\
$password = {V}
$cred = New-Object System.Management.Automation.PSCredential ('svc-pricing', $password)
""",
        "h4_ps_ref",
        False,
    ),
    (
        "src/main/java/io/acme/render/MailConfig.java",
        """\
@Configuration
public class MailConfig {
    private final String smtpPassword = {V};
}
""",
        "h4_jvm_ref",
        False,
    ),
    (
        "src/Pricing.Worker/Startup.cs",
        """\
var apiKey = {V};
services.AddHttpClient("partner", c => c.DefaultRequestHeaders.Add("X-Api-Key", apiKey));
""",
        "h4_cs_ref",
        False,
    ),
    (
        "config/runtime.exs",
        """\
import Config

config :pricing, Pricing.Repo,
  username: "pricing",
  password: {V},
  hostname: "pg-primary.internal"
""",
        "h4_ex_ref",
        False,
    ),
    (
        "Sources/Pricing/Keys.swift",
        """\
enum Keys {
    static var mapsKey: String { {V} }
}
""",
        "h4_swift_ref",
        False,
    ),
    (
        "src/main/scala/io/acme/pricing/Db.scala",
        """\
object DbConfig {
  val password: String = {V}
}
""",
        "h4_scala_ref",
        False,
    ),
    (
        "scripts/report.pl",
        """\
my $dbh = DBI->connect("DBI:Pg:dbname=reports;host=pg-primary.internal",
    "auditor", {V}, { RaiseError => 1 });
""",
        "h4_perl_ref",
        False,
    ),
]

#: ``evalset.build`` makes this part's values with this class.
VALUES = Heldout4Values
