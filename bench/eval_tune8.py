"""Evaluation part ``tune8``: templates written blind (without reading the scanner, its rules or
its tests) for tuning: breadth over languages, file kinds and secret shapes, with look-alikes in
the same shapes. Several values per file (``MULTI_SLOT``, see ``evalset._render_slots``); value
generators are ``Tune8Values`` (new ones prefixed ``t8_``), seed 6607 (``evalset.PARTS``).

Label rule: positive = a concrete value that would grant access if live (weak test passwords
included); negative = anything else.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
import urllib.parse
import uuid

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
ALNUM = evalset.ALNUM
URLSAFE = ALNUM + "_-"


class Tune8Values(evalset.Values):
    """The base generators with this part's own words and service users, plus ``t8_`` ones."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "lemonade",
            "tortoise",
            "avalanche",
            "cinnamon",
            "porcupine",
            "mandolin",
            "hazelnut",
            "blizzard",
            "sapphire",
        ]
        self.users = [
            "dispatch",
            "courier",
            "pricing",
            "archiver",
            "telemetry",
            "checkout",
            "loyalty",
            "geocoder",
        ]

    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n)).decode()

    def _b64url(self, n: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(n)).decode().rstrip("=")

    def _nkey_seed(self, prefix: int) -> str:
        raw = bytes([(18 << 3) | (prefix >> 5), (prefix & 31) << 3]) + self.rng.randbytes(32)
        raw += binascii.crc_hqx(raw, 0).to_bytes(2, "little")
        return base64.b32encode(raw).decode().rstrip("=")

    # -- positives ------------------------------------------------------------------------------
    def t8_pw(self) -> str:
        """A strong password safe in ini/YAML/shell/URL contexts (no quotes, '#', '$', '@', ':')."""
        rng = self.rng
        shape = rng.randrange(3)
        if shape == 0:
            return self.pick(self.words).capitalize() + str(rng.randrange(10, 9999)) + "!"
        if shape == 1:
            return self.s(rng.randrange(14, 22), ALNUM + "-_.")
        return self.s(6) + "-" + self.s(6) + "-" + self.s(6)

    def t8_private_key(self) -> str:
        return self.rng.choice(
            [
                self.pem,
                self.pkcs8_key,
                self.ec_key,
                self.openssh_key,
            ]
        )()

    def t8_weak(self) -> str:
        return self.pick(self.words) + self.pick(["", "1", "123", "2024"])

    def t8_userpass(self) -> str:
        return f"{self.pick(self.users)}:{self.t8_pw()}"

    def t8_ghu(self) -> str:
        return self.github(self.pick(["ghu", "ghr", "ghp", "gho"]))

    def t8_slack_app(self) -> str:
        upper = string.ascii_uppercase + string.digits
        return f"xapp-1-A{self.s(10, upper)}-{self.s(13, string.digits)}-{self.s(64, HEX)}"

    def t8_gitlab_runner(self) -> str:
        return self.pick(["glrt-", "gldt-", "glptt-"]) + self.s(20, URLSAFE)

    def t8_linear(self) -> str:
        return "lin_api_" + self.s(40)

    def t8_notion(self) -> str:
        return "ntn_" + self.s(11, string.digits) + self.s(35)

    def t8_airtable(self) -> str:
        return "pat" + self.s(14) + "." + self.s(64, HEX)

    def t8_dockerhub(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def t8_figma(self) -> str:
        return "figd_" + self.s(40, URLSAFE)

    def t8_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def _mapbox(self, prefix: str) -> str:
        claims = json.dumps({"u": self.pick(self.users), "a": self.s(25, HEX + "xyz")})
        body = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
        return f"{prefix}.{body}.{self.s(22, URLSAFE)}"

    def t8_mapbox_sk(self) -> str:
        return self._mapbox("sk")

    def t8_hubspot(self) -> str:
        return f"pat-{self.pick(['na1', 'eu1'])}-{self.uuid_key()}"

    def t8_datadog(self) -> str:
        return self.s(self.rng.choice([32, 40]), HEX)

    def t8_planetscale(self) -> str:
        return self.pick(["pscale_pw_", "pscale_tkn_"]) + self.s(43, URLSAFE)

    def t8_fcm(self) -> str:
        return "AAAA" + self.s(7, URLSAFE) + ":APA91b" + self.s(134, URLSAFE)

    def t8_service_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "iss": "supabase",
                "ref": self.s(20, string.ascii_lowercase),
                "role": "service_role",
                "iat": 1690000000 + self.rng.randrange(10**7),
                "exp": 2000000000 + self.rng.randrange(10**7),
            }
        )
        return f"{header}.{payload}.{self._b64url(32)}"

    def t8_nkey_seed(self) -> str:
        # operator (O), account (A), user (U), server (N) seeds: "SO", "SA", "SU", "SN"
        return self._nkey_seed(self.rng.choice([14 << 3, 0, 20 << 3, 13 << 3]))

    def t8_sas_sig(self) -> str:
        return urllib.parse.quote(self._b64(32), safe="")

    def t8_laravel_key(self) -> str:
        return "base64:" + self._b64(32)

    def t8_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def t8_teamcity(self) -> str:
        return f"eyJ0eXAiOiAiVENWMiJ9.{self.s(36, URLSAFE)}.{self.s(48, URLSAFE)}"

    def t8_buildkite(self) -> str:
        return "bkua_" + self.s(40, HEX)

    def t8_ci_token(self) -> str:
        """Travis/Drone/CircleCI/Azure DevOps/Bitbucket style tokens without a common prefix."""
        return self.pick(
            [
                self.s(22, URLSAFE),
                self.s(32),
                "CCIPAT_" + self.s(22) + "_" + self.s(40, HEX),
                self.s(52, "abcdefghijklmnopqrstuvwxyz234567"),
                "ATBB" + self.s(28) + self.s(8, "0123456789ABCDEF"),
            ]
        )

    def t8_pulumi_token(self) -> str:
        return "pul-" + self.s(40, HEX)

    def t8_saas_token(self) -> str:
        """A token of one of several SaaS formats (prefixes as the services issue them)."""
        make = self.rng.choice(
            [
                self.t8_notion,
                self.t8_figma,
                self.t8_okta,
                self.t8_planetscale,
                self.t8_pulumi_token,
                self.t8_slack_app,
                self.t8_jenkins_token,
                self.t8_pagerduty,
                self.t8_airtable,
                self.t8_linear,
            ]
        )
        return make()

    def t8_paypal_secret(self) -> str:
        return "E" + self.s(79, URLSAFE)

    def t8_confluent_secret(self) -> str:
        return self.s(64, ALNUM + "+/")

    def t8_kubeadm_token(self) -> str:
        lower = string.ascii_lowercase + string.digits
        return f"{self.s(6, lower)}.{self.s(16, lower)}"

    def t8_redis_pw(self) -> str:
        return self.pick([self.s(32), self.s(64, HEX), self.t8_pw()])

    def t8_session_secret(self) -> str:
        return self.pick([self.s(64, HEX), self._b64(48), self.s(40, URLSAFE)])

    def t8_pagerduty(self) -> str:
        return self.pick(["u+", "y_", ""]) + self.s(18, URLSAFE)

    def t8_cloudflare(self) -> str:
        return self.s(40, URLSAFE)

    def t8_ses_smtp(self) -> str:
        """An SES SMTP user and password: two lines of a Ruby hash (use ``{IV}``)."""
        return f'user_name: "{self.aws_id()}",\npassword: "B{self.s(43, ALNUM + "+/")}"'

    def t8_s3a_pair(self) -> str:
        return (
            f"spark.hadoop.fs.s3a.access.key    {self.aws_id()}\n"
            f"spark.hadoop.fs.s3a.secret.key    {self.aws_secret()}"
        )

    # -- negatives ------------------------------------------------------------------------------
    def t8_placeholder(self) -> str:
        return self.pick(
            [
                "<db-password>",
                "${KAFKA_SASL_PASSWORD}",
                "{{ redis_password }}",
                "###SMTP_PASSWORD###",
                "xxxxxxxxxxxxxxxxxxxx",
                "****************",
                "<YOUR_TOKEN_HERE>",
                "${{ secrets.DEPLOY_KEY }}",
                "{{ .Values.auth.password }}",
                "<paste-key-here>",
                "###API_SECRET###",
                "${vault:secret/data/app#token}",
            ]
        )

    def t8_changeme(self) -> str:
        return self.pick(["changeme", "change-me", "CHANGE_ME", "changeit", "please_change_me"])

    def t8_shell_ref(self) -> str:
        return self.pick(
            [
                "$DB_PASSWORD",
                "${API_TOKEN}",
                "$(cat /run/secrets/db_password)",
                "$(vault kv get -field=password secret/app/db)",
                "$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)",
                "$(pass show infra/registry)",
            ]
        )

    def t8_dart_ref(self) -> str:
        return self.pick(
            [
                "const String.fromEnvironment('API_KEY')",
                "dotenv.env['API_KEY']!",
                "Platform.environment['API_KEY'] ?? ''",
            ]
        )

    def t8_jvm_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("SMTP_PASSWORD")',
                'env.getProperty("spring.mail.password")',
                'requireNotNull(System.getenv("SMTP_PASSWORD"))',
                "mailProperties.password",
            ]
        )

    def t8_grafana_ref(self) -> str:
        return self.pick(
            [
                "$__env{GF_SECURITY_ADMIN_PASSWORD}",
                "$__file{/run/secrets/grafana_admin}",
                "$__vault{database:secret/grafana:password}",
            ]
        )

    def t8_eyaml(self) -> str:
        return "ENC[PKCS7," + self._b64(180) + "]"

    def t8_pulumi_secure(self) -> str:
        if self.rng.randrange(2):
            return "v1:" + self._b64(12) + ":" + self._b64(40)
        return "AAABA" + self._b64(48)

    def t8_kms_blob(self) -> str:
        return "AQICAHh" + self._b64(150)

    def t8_doc_uri(self) -> str:
        scheme = self.pick(["postgres", "mysql", "amqp", "redis", "mongodb", "nats"])
        host = self.pick(
            [
                "db.example.com",
                "broker.example.org",
                "cache.test",
                "mq.invalid",
                "primary.db.example",
                "localhost.example.net",
            ]
        )
        return f"{scheme}://{self.pick(self.users)}:{self.t8_pw()}@{host}"

    def _aws_doc_pair(self) -> tuple[str, str]:
        return self.rng.choice(
            [
                ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                ("AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"),
            ]
        )

    def t8_aws_doc_ini(self) -> str:
        key, secret = self._aws_doc_pair()
        return f"aws_access_key_id = {key}\naws_secret_access_key = {secret}"

    def t8_aws_doc_java(self) -> str:
        key, secret = self._aws_doc_pair()
        return (
            f'private static final String ACCESS_KEY = "{key}";\n'
            f'private static final String SECRET_KEY = "{secret}";'
        )

    def t8_hash(self) -> str:
        return self.pick([self.bcrypt(), self.argon2(), self.sha512crypt(), self.pbkdf2_django()])

    def t8_trace_id(self) -> str:
        if self.rng.randrange(2):
            return f"00-{self.s(32, HEX)}-{self.s(16, HEX)}-01"
        return self.request_id()

    def t8_guid(self) -> str:
        return "{" + str(uuid.UUID(int=self.rng.getrandbits(128))).upper() + "}"

    def t8_i18n(self) -> str:
        return self.pick(
            [
                "Salasana on väärä",
                "Heslo je nesprávné",
                "Hibás jelszó",
                "Kata sandi salah",
                "Parola este incorectă",
                "Adgangskoden er forkert",
                "Գաղտնաբառը սխալ է",
                "პაროლი არასწორია",
                "পাসওয়ার্ড ভুল",
                "கடவுச்சொல் தவறானது",
                "رمز عبور اشتباه است",
                "Нууц үг буруу байна",  # noqa: RUF001
            ]
        )

    def t8_ui_text(self) -> str:
        return self.pick(
            [
                "Your password must contain at least one symbol.",
                "Paste your API key from the dashboard",
                "Token copied to clipboard",
                "Enter the secret shown in your authenticator app",
                "The access key you provided does not exist in our records.",
                "Passwords do not match",
            ]
        )

    def t8_version(self) -> str:
        return self.pick(
            ["4.17.21", "v1.29.3", "2.0.0-beta.7", "17.0.10+7", "2025.1.2", "0.9.0rc3"]
        )

    def t8_font_b64(self) -> str:
        return base64.b64encode(b"wOF2\x00\x01\x00\x00" + self.rng.randbytes(240)).decode()

    def t8_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def t8_twilio_sid(self) -> str:
        return self.pick(["AC", "MG", "PN"]) + self.s(32, HEX)

    def t8_mapbox_pk(self) -> str:
        return self._mapbox("pk")

    def t8_public_id(self) -> str:
        return self.pick([self.stripe_pk(), self.google_client_id(), self.t8_mapbox_pk()])

    def t8_rand_seed(self) -> str:
        return self.pick(["42", "1337", "2024", "0", "12345", "31337", "7"])

    def t8_i18n_key(self) -> str:
        return self.pick(
            [
                "auth.password.mismatch",
                "settings.api_key.label",
                "errors.token_expired",
                "login.forgot_password",
                "account.secret.rotate_hint",
            ]
        )

    def t8_masked(self) -> str:
        return self.pick(
            [
                "sk_live_" + "*" * 24,
                "ghp_" + "*" * 36,
                "AKIA" + "X" * 16,
                "********",
                "xoxb-" + "x" * 20,
                "[FILTERED]",
            ]
        )

    def t8_public_key(self) -> str:
        return self.pick([self.public_pem(), self.certificate()])

    def t8_pgp_or_ssh_public(self) -> str:
        return self.pick([self.ssh_public(), self.age_public(), self.nkey_public()])

    def t8_encrypted(self) -> str:
        return self.pick([self.encrypted_key(), self.legacy_encrypted_key()])

    def t8_secret_path(self) -> str:
        return self.pick(
            [
                "/run/secrets/rabbitmq_password",
                "/etc/kafka/secrets/broker.jaas.pass",
                "/var/lib/grafana/admin.pass",
                "~/.config/app/token",
                "C:\\ProgramData\\App\\secrets\\smtp.txt",
            ]
        )

    def t8_nb_ref(self) -> str:
        return self.pick(
            [
                'os.environ[\\"WAREHOUSE_PASSWORD\\"]',
                'getpass.getpass(\\"Warehouse password: \\")',
                'dbutils.secrets.get(scope=\\"dwh\\", key=\\"password\\")',
                'userdata.get(\\"WAREHOUSE_PASSWORD\\")',
            ]
        )

    def t8_pgp_message(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 6)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP MESSAGE-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP MESSAGE-----"
        )


#: (path, text, value generator, is a credential); ``{V}``/``{V2}``/... are fresh values of the
#: generator, ``{IV}`` indents a multi-line value like its line.
Template = evalset.Template


def _t(path: str, text: str, kind: str, positive: bool) -> Template:
    return (path, text.lstrip("\n"), kind, positive)


TEMPLATES: list[Template] = [
    # ======================================================================= credentials ===
    # -- Authorization set through calls, curl, cassettes -----------------------------------
    _t(
        "internal/courier/client.go",
        r"""
package courier

import "net/http"

func (c *Client) newRequest(method, url string) (*http.Request, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Basic {V}")
	req.Header.Set("Accept", "application/json")
	return req, nil
}
""",
        "basic",
        True,
    ),
    _t(
        "scripts/backfill_prices.py",
        r"""
import requests

PRICING_API = "https://pricing.internal.corp/api/v2"


def fetch(sku: str) -> dict:
    resp = requests.get(
        f"{PRICING_API}/items/{sku}",
        headers={"Authorization": f"Bearer {V}", "Accept": "application/json"},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()
""",
        "bearer",
        True,
    ),
    _t(
        "docs/runbooks/rotate-geocoder.md",
        r"""
# Re-index the geocoder after a schema change

Trigger the job from a bastion host:

```bash
curl -sS -X POST https://geocoder.prod.internal/admin/reindex \
  -H "Authorization: Bearer {V}" \
  -H "Content-Type: application/json" \
  -d '{"full": true}'
```

It takes about twenty minutes; watch the `reindex_progress` dashboard.
""",
        "t8_linear",
        True,
    ),
    _t(
        "ops/smoke.sh",
        r"""
#!/usr/bin/env bash
set -euo pipefail

curl --fail --silent \
  -u {V} \
  https://nexus.corp.internal/service/rest/v1/status/check
echo "nexus healthy"
""",
        "t8_userpass",
        True,
    ),
    _t(
        "spec/cassettes/loyalty/points_balance.yml",
        r"""
---
http_interactions:
- request:
    method: get
    uri: https://api.loyaltyhub.io/v1/members/88213/points
    body:
      encoding: US-ASCII
      string: ''
    headers:
      Accept:
      - application/json
      Authorization:
      - Bearer {V}
      User-Agent:
      - Faraday v2.9.0
  response:
    status:
      code: 200
      message: OK
    headers:
      Content-Type:
      - application/json; charset=utf-8
    body:
      encoding: UTF-8
      string: '{"member":88213,"points":1420}'
recorded_at: Tue, 04 Jun 2024 10:12:44 GMT
recorded_with: VCR 6.2.0
""",
        "t8_hubspot",
        True,
    ),
    _t(
        "tests/fixtures/vcr/test_create_invoice.yaml",
        r"""
interactions:
- request:
    body: '{"amount": 1200, "currency": "eur"}'
    headers:
      Accept: ['*/*']
      Authorization: [Basic {V}]
      Content-Length: ['35']
    method: POST
    uri: https://billing.partner-api.net/v3/invoices
  response:
    body: {string: '{"id": "inv_3391", "status": "open"}'}
    status: {code: 201, message: Created}
version: 1
""",
        "basic",
        True,
    ),
    _t(
        "Sources/Telemetry/Uploader.swift",
        r"""
import Foundation

final class Uploader {
    private let endpoint = URL(string: "https://telemetry.corp-apps.net/ingest")!

    func makeRequest(body: Data) -> URLRequest {
        var request = URLRequest(url: endpoint)
        request.httpMethod = "POST"
        request.setValue("Bearer {V}", forHTTPHeaderField: "Authorization")
        request.httpBody = body
        return request
    }
}
""",
        "t8_service_jwt",
        True,
    ),
    _t(
        "src/main/java/com/corp/dispatch/HubClient.java",
        r"""
package com.corp.dispatch;

import java.net.URI;
import java.net.http.HttpRequest;

final class HubClient {
    HttpRequest poll(String queue) {
        return HttpRequest.newBuilder(URI.create("https://hub.corp.net/queues/" + queue))
                .header("X-Api-Key", "{V}")
                .GET()
                .build();
    }
}
""",
        "uuid_key",
        True,
    ),
    _t(
        "logs/worker-2024-05-11.log",
        r"""
2024-05-11T03:12:09.114Z INFO  worker starting pid=4412
2024-05-11T03:12:09.310Z DEBUG http > POST https://api.fulfilment.io/v1/batches
2024-05-11T03:12:09.310Z DEBUG http > Authorization: Bearer {V}
2024-05-11T03:12:09.311Z DEBUG http > Content-Type: application/json
2024-05-11T03:12:09.902Z INFO  batch 8812 accepted in 591ms
""",
        "jwt",
        True,
    ),
    # -- bare key / consumer_key / client_secret / seed names -------------------------------
    _t(
        "config/oauth1.py",
        r"""
# Legacy marketplace integration (OAuth 1.0a)
consumer_key = "{V}"
consumer_secret = "{V2}"
""",
        "twitter_key",
        True,
    ),
    _t(
        "app/integrations/maps.py",
        r"""
from gmaps_client import Client

client = Client(key="{V}", timeout=5)
""",
        "google",
        True,
    ),
    _t(
        "settings/sso.toml",
        r"""
[sso.azure]
tenant = "corp.onmicrosoft.com"
client_id = "4f1c2e0a-7d2b-4c44-9a1b-3e5f6a7b8c9d"
client_secret = "{V}"
redirect_uri = "https://portal.corp.net/auth/callback"
""",
        "azure_client_secret",
        True,
    ),
    _t(
        "nats/leaf/dispatch.creds",
        r"""
-----BEGIN USER NKEY SEED-----
{V}
------END USER NKEY SEED------

*************************************************************
NKEY Seed printed above can be used to sign and prove identity.
    NKEYs are sensitive and should be treated as secrets.
*************************************************************
""",
        "t8_nkey_seed",
        True,
    ),
    _t(
        "deploy/nats/auth.conf",
        r"""
authorization {
  users = [
    { nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4 }
  ]
}
system_account: SYS
# signing seed for the dispatch service account
seed: "{V}"
""",
        "t8_nkey_seed",
        True,
    ),
    _t(
        "keys/signing.jwk.json",
        r"""
{
  "kty": "OKP",
  "crv": "Ed25519",
  "kid": "dispatch-2024-06",
  "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
  "d": "{V}",
  "use": "sig"
}
""",
        "jwk_d",
        True,
    ),
    _t(
        "config/keyring.exs",
        r"""
import Config

config :checkout, Checkout.Tokens,
  key: "{V}",
  ttl: 3600
""",
        "t8_session_secret",
        True,
    ),
    _t(
        "app/config/secrets.dart",
        r"""
class Secrets {
  static const String stripePublishable = 'pk_live_51Hx0000000000000000000000';
  static const String apiKey = '{V}';
  static const String environment = 'production';
}
""",
        "t8_saas_token",
        True,
    ),
    # -- UUID API keys -----------------------------------------------------------------------
    _t(
        ".env.production",
        r"""
NODE_ENV=production
PORT=8080
HEROKU_API_KEY={V}
NEW_RELIC_APP_NAME=checkout-web
CONSUL_HTTP_TOKEN={V2}
""",
        "uuid_key",
        True,
    ),
    _t(
        "terraform/providers.tf",
        r"""
provider "heroku" {
  email   = "platform@corp.net"
  api_key = "{V}"
}

provider "datadog" {
  api_key = "{V2}"
  app_key = "{V3}"
}
""",
        "t8_datadog",
        True,
    ),
    # -- values before a shell line continuation ----------------------------------------------
    _t(
        "scripts/deploy_stack.sh",
        r"""
#!/bin/sh
aws cloudformation deploy \
  --stack-name loyalty-prod \
  --template-file stack.yml \
  --parameter-overrides DbPassword={V} \
  --capabilities CAPABILITY_IAM
""",
        "t8_pw",
        True,
    ),
    _t(
        "Makefile",
        r"""
.PHONY: push
push:
	docker login registry.corp.net \
		--username ci-pusher \
		--password {V} \
		&& docker push registry.corp.net/courier:$(VERSION)
""",
        "t8_dockerhub",
        True,
    ),
    _t(
        "tools/release.ps1",
        r"""
$ErrorActionPreference = 'Stop'
dotnet nuget push .\artifacts\*.nupkg `
  --source https://nuget.pkg.github.com/corp/index.json `
  --api-key {V} `
  --skip-duplicate
""",
        "t8_ghu",
        True,
    ),
    # -- KEY=value in Markdown / TOML docs -------------------------------------------------------
    _t(
        "README.md",
        r"""
# courier-gateway

## Local setup

Create `.env` in the repository root:

```
COURIER_API_URL=https://sandbox.courierhq.com
COURIER_API_KEY={V}
SENTRY_ENVIRONMENT=dev
```

Then run `npm run dev`.
""",
        "api_key",
        True,
    ),
    _t(
        "docs/wiki/Staging.md",
        r"""
## Staging credentials (team only)

| system | user | password |
|--------|------|----------|
| pgadmin | dba | {V} |
| rabbitmq ui | ops | {V2} |

Ask in #platform before changing them.
""",
        "t8_pw",
        True,
    ),
    # -- weak dictionary-word passwords in tests and examples -----------------------------------
    _t(
        "tests/test_login.py",
        r"""
import pytest

PASSWORD = "{V}"


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="dispatcher", email="d@corp.net", password=PASSWORD
    )


def test_login(client, staff_user):
    assert client.login(username="dispatcher", password=PASSWORD)
""",
        "t8_weak",
        True,
    ),
    _t(
        "internal/bus/bus_test.go",
        r"""
package bus

import "testing"

func TestConnect(t *testing.T) {
	nc, err := Connect("nats://courier:{V}@localhost:4222")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
}
""",
        "t8_weak",
        True,
    ),
    _t(
        "src/test/kotlin/RepoIT.kt",
        r"""
class RepoIT {
    private val ds = PGSimpleDataSource().apply {
        setURL("jdbc:postgresql://localhost:5432/pricing")
        user = "pricing"
        password = "{V}"
    }
}
""",
        "t8_weak",
        True,
    ),
    # -- several private keys in one file ---------------------------------------------------------
    _t(
        "tests/certs/mtls/bundle.pem",
        r"""
# server
{V}
# client
{V2}
# legacy client (kept for the v1 agents)
{V3}
""",
        "t8_private_key",
        True,
    ),
    _t(
        "deploy/helm/courier/values-prod.yaml",
        r"""
replicaCount: 3
image:
  repository: registry.corp.net/courier
  tag: "3.4.1"
tls:
  enabled: true
  key: |
    {IV}
  caKey: |
    {IV2}
""",
        "ec_key",
        True,
    ),
    _t(
        "ansible/roles/bastion/files/id_ed25519",
        r"""
{V}
""",
        "openssh_key",
        True,
    ),
    # -- databases' own config files ------------------------------------------------------------
    _t(
        "ops/mysql/.my.cnf",
        r"""
[client]
user=backup
password={V}
host=mysql-primary.corp.internal

[mysqldump]
single-transaction
""",
        "t8_pw",
        True,
    ),
    _t(
        "ops/redis/redis.conf",
        r"""
bind 0.0.0.0
port 6379
protected-mode yes
requirepass {V}
masterauth {V2}
maxmemory 2gb
maxmemory-policy allkeys-lru
""",
        "t8_redis_pw",
        True,
    ),
    _t(
        "home/deploy/.pgpass",
        r"""
pg-primary.corp.internal:5432:loyalty:loyalty_app:{V}
pg-replica.corp.internal:5432:*:readonly:{V2}
""",
        "t8_pw",
        True,
    ),
    _t(
        "ops/mongo/mongod.conf",
        r"""
net:
  port: 27017
  bindIp: 0.0.0.0
security:
  authorization: enabled
  keyFile: /etc/mongo/keyfile
setParameter:
  ldapQueryPassword: "{V}"
  ldapQueryUser: "cn=mongo-bind,ou=svc,dc=corp,dc=net"
""",
        "t8_pw",
        True,
    ),
    _t(
        "appsettings.Production.json",
        r"""
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "ConnectionStrings": {
    "Orders": "Server=tcp:sql-prod.database.windows.net,1433;Database=orders;User ID=orders_app;Password={V};Encrypt=True;",
    "Cache": "cache-prod.redis.cache.windows.net:6380,ssl=True,abortConnect=False"
  }
}
""",
        "t8_pw",
        True,
    ),
    _t(
        "config/storage.yml",
        r"""
azure:
  service: AzureStorage
  storage_account_name: corpmedia
  storage_access_key: "{V}"
  container: uploads
""",
        "azure_key",
        True,
    ),
    _t(
        "scripts/upload_report.py",
        r"""
from azure.storage.blob import BlobClient

SAS_URL = (
    "https://corpreports.blob.core.windows.net/daily/report.csv"
    "?sv=2022-11-02&ss=b&srt=o&sp=rwc&se=2026-01-01T00:00:00Z&spr=https&sig={V}"
)
BlobClient.from_blob_url(SAS_URL).upload_blob(open("report.csv", "rb"), overwrite=True)
""",
        "t8_sas_sig",
        True,
    ),
    _t(
        "db/seeds/001_roles.sql",
        r"""
CREATE ROLE reporting WITH LOGIN PASSWORD '{V}';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;
ALTER ROLE archiver WITH PASSWORD '{V2}';
""",
        "t8_pw",
        True,
    ),
    # -- data platforms ---------------------------------------------------------------------------
    _t(
        "airflow/.env",
        r"""
AIRFLOW__CORE__EXECUTOR=CeleryExecutor
AIRFLOW_CONN_WAREHOUSE='postgresql://etl_loader:{V}@warehouse.corp.internal:5432/dwh'
AIRFLOW_CONN_S3_RAW='aws://?region_name=eu-west-1'
""",
        "url_password",
        True,
    ),
    _t(
        "analytics/profiles.yml",
        r"""
loyalty:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: xy12345.eu-central-1
      user: DBT_PROD
      password: "{V}"
      role: TRANSFORMER
      warehouse: TRANSFORMING
      database: ANALYTICS
      schema: marts
      threads: 8
""",
        "t8_pw",
        True,
    ),
    _t(
        "spark/conf/spark-defaults.conf",
        r"""
spark.master                      k8s://https://kubernetes.default.svc
spark.hadoop.fs.s3a.endpoint      s3.eu-west-1.amazonaws.com
{V}
spark.eventLog.enabled            true
""",
        "t8_s3a_pair",
        True,
    ),
    _t(
        "notebooks/explore_orders.ipynb",
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import openai\n",
    "openai.api_key = \"{V}\"\n",
    "resp = openai.chat.completions.create(model=\"gpt-4o\", messages=msgs)\n"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "openai",
        True,
    ),
    # -- config management ------------------------------------------------------------------------
    _t(
        "salt/pillar/rabbitmq.sls",
        r"""
rabbitmq:
  users:
    dispatch:
      password: {V}
      tags: [management]
  erlang_cookie: {V2}
""",
        "t8_pw",
        True,
    ),
    _t(
        "chef/data_bags/credentials/smtp.json",
        r"""
{
  "id": "smtp",
  "host": "smtp.mailgun.org",
  "port": 587,
  "username": "postmaster@mg.corp.net",
  "password": "{V}"
}
""",
        "mailgun",
        True,
    ),
    _t(
        "puppet/data/common.yaml",
        r"""
---
profile::grafana::admin_user: 'admin'
profile::grafana::admin_password: '{V}'
profile::postgres::replication_password: '{V2}'
profile::ntp::servers:
  - 0.pool.ntp.org
""",
        "t8_pw",
        True,
    ),
    _t(
        "ansible/inventories/prod/hosts.ini",
        r"""
[db]
pg-01.corp.internal ansible_user=deploy ansible_password={V}
pg-02.corp.internal ansible_user=deploy ansible_become_pass={V2}

[db:vars]
ansible_python_interpreter=/usr/bin/python3
""",
        "t8_pw",
        True,
    ),
    _t(
        "ansible/group_vars/all/main.yml",
        r"""
ntp_timezone: Europe/Berlin
newrelic_license_key: "{V}"
datadog_api_key: "{V2}"
""",
        "hex32",
        True,
    ),
    # -- observability ----------------------------------------------------------------------------
    _t(
        "grafana/grafana.ini",
        r"""
[server]
root_url = https://grafana.corp.net

[security]
admin_user = admin
admin_password = {V}
secret_key = {V2}

[auth.anonymous]
enabled = false
""",
        "t8_pw",
        True,
    ),
    _t(
        "monitoring/alertmanager.yml",
        r"""
route:
  receiver: platform
receivers:
  - name: platform
    slack_configs:
      - api_url: {V}
        channel: "#alerts"
        send_resolved: true
""",
        "slack_webhook",
        True,
    ),
    _t(
        "monitoring/prometheus.yml",
        r"""
scrape_configs:
  - job_name: pushgateway
    scheme: https
    basic_auth:
      username: prom
      password: {V}
    static_configs:
      - targets: ["push.corp.net:443"]
""",
        "t8_pw",
        True,
    ),
    # -- web servers and proxies ------------------------------------------------------------------
    _t(
        "nginx/conf.d/upstream-auth.conf",
        r"""
location /partner/ {
    proxy_pass https://partner-api.vendor.net/;
    proxy_set_header Host partner-api.vendor.net;
    proxy_set_header Authorization "Basic {V}";
}
""",
        "basic",
        True,
    ),
    _t(
        "haproxy/haproxy.cfg",
        r"""
userlist stats_users
    user admin insecure-password {V}

listen stats
    bind *:8404
    stats enable
    stats uri /stats
    stats auth ops:{V2}
""",
        "t8_pw",
        True,
    ),
    _t(
        "traefik/traefik.yml",
        r"""
certificatesResolvers:
  le:
    acme:
      email: ops@corp.net
      dnsChallenge:
        provider: cloudflare
providers:
  docker: {}
# CF_DNS_API_TOKEN for the dns challenge
env:
  CF_DNS_API_TOKEN: "{V}"
""",
        "t8_cloudflare",
        True,
    ),
    # -- messaging --------------------------------------------------------------------------------
    _t(
        "kafka/config/kafka_client_jaas.conf",
        r"""
KafkaClient {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="courier-producer"
  password="{V}";
};
""",
        "t8_pw",
        True,
    ),
    _t(
        "src/main/resources/application-prod.properties",
        r"""
spring.kafka.bootstrap-servers=pkc-4r297.europe-west1.gcp.confluent.cloud:9092
spring.kafka.properties.security.protocol=SASL_SSL
spring.kafka.properties.sasl.mechanism=PLAIN
spring.kafka.properties.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="QX7ZP2KD4M5N6R8T" password="{V}";
""",
        "t8_confluent_secret",
        True,
    ),
    _t(
        "lib/bus.ex",
        r"""
defmodule Loyalty.Bus do
  use GenServer

  @amqp_url "amqps://loyalty:{V}@rabbit.corp.internal:5671/prod"

  def start_link(_), do: GenServer.start_link(__MODULE__, @amqp_url, name: __MODULE__)
end
""",
        "url_password",
        True,
    ),
    # -- payments and SaaS SDK init code ----------------------------------------------------------
    _t(
        "config/initializers/stripe.rb",
        r"""
Stripe.api_key = "{V}"
Stripe.api_version = "2024-04-10"
""",
        "stripe",
        True,
    ),
    _t(
        "app/Providers/PaymentServiceProvider.php",
        r"""
<?php

namespace App\Providers;

use Braintree\Gateway;

class PaymentServiceProvider extends ServiceProvider
{
    public function register(): void
    {
        $this->app->singleton(Gateway::class, fn () => new Gateway([
            'environment' => 'production',
            'merchantId' => 'x7k2q9w4m3n8p5r1',
            'publicKey' => 'b4j6n8q2w5e7r9t3',
            'privateKey' => '{V}',
        ]));
    }
}
""",
        "hex32",
        True,
    ),
    _t(
        "payments/paypal.go",
        r"""
package payments

var paypalConfig = Config{
	ClientID:     "AeQk3bY0tZ9yR2pXvWc8uN5mLj4hGf7dSa1qE6wT0rYiUoPlKjHgFdSaQwErTyUi",
	ClientSecret: "{V}",
	Mode:         "live",
}
""",
        "t8_paypal_secret",
        True,
    ),
    _t(
        "src/lib/sentry_slack.rs",
        r"""
const SLACK_BOT_TOKEN: &str = "{V}";

pub fn client() -> slack::Client {
    slack::Client::new(SLACK_BOT_TOKEN)
}
""",
        "slack",
        True,
    ),
    _t(
        "src/main/scala/com/corp/pricing/Twilio.scala",
        r"""
package com.corp.pricing

object TwilioConf {
  val accountSid = "AC3f8e2b1d9c4a7e6f5b0d2c1a9e8f7d6c"
  val authToken  = "{V}"
}
""",
        "tune6_twilio_token",
        True,
    ),
    _t(
        "scripts/notify.pl",
        r"""
#!/usr/bin/perl
use strict;
use warnings;
use LWP::UserAgent;

my $ua = LWP::UserAgent->new;
my $token = '{V}';
$ua->post("https://api.telegram.org/bot$token/sendMessage", { chat_id => '-100231', text => $ARGV[0] });
""",
        "telegram",
        True,
    ),
    _t(
        "lib/services/push.dart",
        r"""
import 'package:http/http.dart' as http;

const _fcmServerKey = '{V}';

Future<void> send(String token, String body) => http.post(
      Uri.parse('https://fcm.googleapis.com/fcm/send'),
      headers: {'Authorization': 'key=$_fcmServerKey', 'Content-Type': 'application/json'},
      body: body,
    );
""",
        "t8_fcm",
        True,
    ),
    # -- mobile -----------------------------------------------------------------------------------
    _t(
        "android/gradle.properties",
        r"""
org.gradle.jvmargs=-Xmx4g
android.useAndroidX=true
RELEASE_STORE_FILE=../keystore/release.jks
RELEASE_STORE_PASSWORD={V}
RELEASE_KEY_ALIAS=loyalty
RELEASE_KEY_PASSWORD={V2}
""",
        "t8_pw",
        True,
    ),
    _t(
        "ios/Loyalty/Config.plist",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>BaseURL</key>
	<string>https://api.loyalty.corp.net</string>
	<key>MapboxSecretToken</key>
	<string>{V}</string>
</dict>
</plist>
""",
        "t8_mapbox_sk",
        True,
    ),
    _t(
        "android/app/src/main/res/values/secrets.xml",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="segment_write_key" translatable="false">{V}</string>
    <string name="app_center_secret" translatable="false">{V2}</string>
</resources>
""",
        "uuid_key",
        True,
    ),
    # -- CI systems -------------------------------------------------------------------------------
    _t(
        ".github/workflows/release.yml",
        r"""
name: release
on:
  push:
    tags: ["v*"]
jobs:
  publish:
    runs-on: ubuntu-latest
    env:
      CARGO_REGISTRY_TOKEN: {V}
    steps:
      - uses: actions/checkout@v4
      - run: cargo publish --locked
""",
        "crates_io",
        True,
    ),
    _t(
        ".gitlab-ci.yml",
        r"""
stages: [build, deploy]

variables:
  DOCKER_DRIVER: overlay2
  DEPLOY_TOKEN: "{V}"

deploy:
  stage: deploy
  script:
    - curl -X POST --fail -F token=$DEPLOY_TOKEN -F ref=main https://gitlab.corp.net/api/v4/projects/41/trigger/pipeline
""",
        "t8_gitlab_runner",
        True,
    ),
    _t(
        ".circleci/config.yml",
        r"""
version: 2.1
jobs:
  deploy:
    docker:
      - image: cimg/node:20.11
        auth:
          username: corpci
          password: {V}
    steps:
      - checkout
      - run: npm ci && npm run deploy
""",
        "t8_dockerhub",
        True,
    ),
    _t(
        "Jenkinsfile",
        r"""
pipeline {
    agent any
    stages {
        stage('Publish') {
            steps {
                sh 'docker login -u jenkins-ci -p {V} registry.corp.net'
                sh 'docker push registry.corp.net/pricing:${BUILD_NUMBER}'
            }
        }
    }
}
""",
        "t8_pw",
        True,
    ),
    _t(
        "azure-pipelines.yml",
        r"""
trigger:
  - main
variables:
  AZURE_DEVOPS_EXT_PAT: {V}
steps:
  - script: az artifacts universal publish --organization https://dev.azure.com/corp --feed tools --name cli --version 1.0.$(Build.BuildId) --path dist
""",
        "t8_ci_token",
        True,
    ),
    _t(
        "bitbucket-pipelines.yml",
        r"""
pipelines:
  default:
    - step:
        name: Deploy
        script:
          - pipe: atlassian/ssh-run:0.8.0
            variables:
              SSH_USER: deploy
              SERVER: app-01.corp.net
          - export BB_APP_PASSWORD={V}
          - ./scripts/tag-release.sh
""",
        "t8_ci_token",
        True,
    ),
    _t(
        ".drone.yml",
        r"""
kind: pipeline
type: docker
name: default
steps:
  - name: publish
    image: plugins/docker
    settings:
      repo: corp/archiver
      username: corpbot
      password: {V}
""",
        "t8_pw",
        True,
    ),
    _t(
        ".buildkite/pipeline.yml",
        r"""
env:
  BUILDKITE_API_TOKEN: "{V}"
steps:
  - label: ":rocket: deploy"
    command: scripts/deploy.sh
""",
        "t8_buildkite",
        True,
    ),
    _t(
        ".teamcity/settings.kts",
        r"""
object Deploy : BuildType({
    name = "Deploy"
    params {
        param("env.TEAMCITY_TOKEN", "{V}")
    }
})
""",
        "t8_teamcity",
        True,
    ),
    _t(
        ".travis.yml",
        r"""
language: python
python: "3.11"
env:
  global:
    - PYPI_TOKEN={V}
deploy:
  provider: script
  script: twine upload -u __token__ -p $PYPI_TOKEN dist/*
""",
        "pypi",
        True,
    ),
    # -- IaC --------------------------------------------------------------------------------------
    _t(
        "infra/pulumi/index.ts",
        r"""
import * as aws from "@pulumi/aws";

const db = new aws.rds.Instance("loyalty", {
    engine: "postgres",
    instanceClass: "db.t4g.medium",
    allocatedStorage: 50,
    username: "loyalty",
    password: "{V}",
    skipFinalSnapshot: true,
});
""",
        "t8_pw",
        True,
    ),
    _t(
        "infra/cdk/lib/queue-stack.ts",
        r"""
import { SecretValue, Stack } from "aws-cdk-lib";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";

export class QueueStack extends Stack {
  constructor(scope: any, id: string) {
    super(scope, id);
    new secretsmanager.Secret(this, "PartnerToken", {
      secretStringValue: SecretValue.unsafePlainText("{V}"),
    });
  }
}
""",
        "t8_saas_token",
        True,
    ),
    _t(
        "infra/bicep/sql.bicep",
        r"""
param location string = resourceGroup().location
param adminLogin string = 'sqladmin'
param adminPassword string = '{V}'

resource sql 'Microsoft.Sql/servers@2022-05-01-preview' = {
  name: 'sql-checkout-prod'
  location: location
  properties: {
    administratorLogin: adminLogin
    administratorLoginPassword: adminPassword
  }
}
""",
        "t8_pw",
        True,
    ),
    _t(
        "infra/cfn/database.yaml",
        r"""
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  DbPassword:
    Type: String
    NoEcho: true
    Default: "{V}"
Resources:
  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      Engine: mysql
      MasterUsername: admin
      MasterUserPassword: !Ref DbPassword
""",
        "t8_pw",
        True,
    ),
    _t(
        "infra/terraform/backend.tf",
        r"""
terraform {
  cloud {
    organization = "corp"
    workspaces { name = "loyalty-prod" }
    token = "{V}"
  }
}
""",
        "tfc_token",
        True,
    ),
    # -- mail -------------------------------------------------------------------------------------
    _t(
        "loyalty/settings/production.py",
        r"""
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "smtp.sendgrid.net"
EMAIL_PORT = 587
EMAIL_HOST_USER = "apikey"
EMAIL_HOST_PASSWORD = "{V}"
EMAIL_USE_TLS = True
""",
        "sendgrid",
        True,
    ),
    _t(
        "config/environments/production.rb",
        r"""
Rails.application.configure do
  config.action_mailer.delivery_method = :smtp
  config.action_mailer.smtp_settings = {
    address: "email-smtp.eu-west-1.amazonaws.com",
    port: 587,
    {IV},
    authentication: :login
  }
end
""",
        "t8_ses_smtp",
        True,
    ),
    _t(
        "src/mailer.js",
        r"""
const nodemailer = require("nodemailer");

module.exports = nodemailer.createTransport({
  host: "smtp.office365.com",
  port: 587,
  auth: { user: "noreply@corp.net", pass: "{V}" },
});
""",
        "t8_pw",
        True,
    ),
    _t(
        "src/Mail/Notifier.cs",
        r"""
var smtp = new SmtpClient("smtp.corp.net", 587)
{
    EnableSsl = true,
    Credentials = new NetworkCredential("notifier@corp.net", "{V}"),
};
""",
        "t8_pw",
        True,
    ),
    _t(
        "internal/mail/send.go",
        r"""
package mail

import "net/smtp"

var auth = smtp.PlainAuth("", "alerts@corp.net", "{V}", "smtp.gmail.com")
""",
        "t8_pw",
        True,
    ),
    _t(
        "legacy/contact.php",
        r"""
<?php
$mail = new PHPMailer(true);
$mail->isSMTP();
$mail->Host = 'smtp.corp.net';
$mail->SMTPAuth = true;
$mail->Username = 'web@corp.net';
$mail->Password = '{V}';
$mail->Port = 465;
""",
        "t8_pw",
        True,
    ),
    # -- credentials files --------------------------------------------------------------------------
    _t(
        "home/ci/.netrc",
        r"""
machine api.heroku.com
  login ci@corp.net
  password {V}
machine git.heroku.com
  login ci@corp.net
  password {V2}
""",
        "uuid_key",
        True,
    ),
    _t(
        "frontend/.npmrc",
        r"""
@corp:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
//registry.npmjs.org/:_authToken={V2}
""",
        "t8_ghu",
        True,
    ),
    _t(
        "home/release/.pypirc",
        r"""
[distutils]
index-servers =
    pypi
    corp

[pypi]
username = __token__
password = {V}

[corp]
repository = https://pypi.corp.net/simple
username = release
""",
        "pypi",
        True,
    ),
    _t(
        "home/ops/.kube/config",
        r"""
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://k8s-prod.corp.net:6443
  name: prod
users:
- name: ops
  user:
    client-key-data: {V}
contexts:
- context: {cluster: prod, user: ops}
  name: prod
current-context: prod
""",
        "b64_pem",
        True,
    ),
    _t(
        "home/ops/.docker/config.json",
        r"""
{
  "auths": {
    "registry.corp.net": {
      "auth": "{V}"
    },
    "ghcr.io": {
      "auth": "{V2}"
    }
  }
}
""",
        "basic",
        True,
    ),
    _t(
        "home/ops/.aws/credentials",
        r"""
[default]
region = eu-west-1

[loyalty-prod]
{V}
""",
        "aws_ini_pair",
        True,
    ),
    _t(
        "keys/gcp-archiver.json",
        r"""
{
  "type": "service_account",
  "project_id": "corp-archiver",
  "private_key_id": "3c1d9f0a2b7e4c6d8f1a0b9c7e5d3f2a1b0c9d8e",
  "private_key": "{V}",
  "client_email": "archiver@corp-archiver.iam.gserviceaccount.com",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
        "gcp_private_key",
        True,
    ),
    # -- containers and orchestration -------------------------------------------------------------
    _t(
        "Dockerfile",
        r"""
FROM python:3.11-slim
ENV PIP_INDEX_URL=https://pricing:{V}@pypi.corp.net/simple
WORKDIR /app
COPY . .
RUN pip install -r requirements.txt
CMD ["gunicorn", "pricing.wsgi"]
""",
        "url_password",
        True,
    ),
    _t(
        "docker-compose.override.yml",
        r"""
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: checkout
      POSTGRES_PASSWORD: {V}
  cache:
    image: redis:7
    command: ["redis-server", "--requirepass", "{V2}"]
""",
        "t8_pw",
        True,
    ),
    _t(
        "k8s/base/secret.yaml",
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: pricing-db
type: Opaque
data:
  username: cHJpY2luZw==
  password: {V}
""",
        "b64_password",
        True,
    ),
    _t(
        "cluster/join.sh",
        r"""
#!/bin/bash
kubeadm join 10.0.12.4:6443 --token {V} \
    --discovery-token-ca-cert-hash sha256:7b1e4f0c2d9a8e6b5c3f1d0a9e8b7c6d5f4e3a2b1c0d9e8f7a6b5c4d3e2f1a0b
""",
        "t8_kubeadm_token",
        True,
    ),
    # -- other languages and frameworks -----------------------------------------------------------
    _t(
        "wp-config.php",
        r"""
<?php
define( 'DB_NAME', 'shop' );
define( 'DB_USER', 'shop' );
define( 'DB_PASSWORD', '{V}' );
define( 'DB_HOST', 'mysql.corp.internal' );
""",
        "t8_pw",
        True,
    ),
    _t(
        ".env",
        r"""
APP_NAME=Checkout
APP_ENV=production
APP_KEY={V}
APP_DEBUG=false
""",
        "t8_laravel_key",
        True,
    ),
    _t(
        "scripts/Connect-Tenant.ps1",
        r"""
$secure = ConvertTo-SecureString "{V}" -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential ("svc-archiver@corp.onmicrosoft.com", $secure)
Connect-ExchangeOnline -Credential $cred
""",
        "t8_pw",
        True,
    ),
    _t(
        "src/main/resources/application.conf",
        r"""
db {
  default {
    driver = "org.postgresql.Driver"
    url = "jdbc:postgresql://pg.corp.internal:5432/pricing"
    username = "pricing"
    password = "{V}"
  }
}
""",
        "t8_pw",
        True,
    ),
    # ======================================================================= look-alikes ===
    # -- Authorization through calls / curl / cassettes, but not a credential ---------------------
    _t(
        "internal/geo/client.go",
        r"""
package geo

import (
	"net/http"
	"os"
)

func authorize(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+{V})
	req.Header.Set("X-Client", "geocoder")
}

var _ = os.Getenv
""",
        "tune6_go_ref",
        False,
    ),
    _t(
        "docs/api/authentication.md",
        r"""
## Authentication

Every request needs a personal access token:

```bash
curl https://api.courierhq.com/v1/shipments \
  -H "Authorization: Bearer {V}" \
  -H "Accept: application/json"
```

Tokens are created under *Settings → API*.
""",
        "tune7_doc_placeholder",
        False,
    ),
    _t(
        "scripts/ping_archive.sh",
        r"""
#!/usr/bin/env bash
curl -fsS \
  -u "archiver:{V}" \
  https://archive.internal.corp/health
""",
        "t8_shell_ref",
        False,
    ),
    _t(
        "spec/cassettes/pricing/list_items.yml",
        r"""
---
http_interactions:
- request:
    method: get
    uri: https://pricing.partner.net/v1/items
    headers:
      Authorization:
      - "<AUTHORIZATION>"
      X-Request-Id:
      - {V}
  response:
    status:
      code: 200
      message: OK
    headers:
      X-Trace-Id:
      - {V2}
    body:
      encoding: UTF-8
      string: '[]'
recorded_with: VCR 6.2.0
""",
        "t8_trace_id",
        False,
    ),
    _t(
        "tests/fixtures/vcr/test_refund.yaml",
        r"""
interactions:
- request:
    body: '{"charge": "ch_1"}'
    headers:
      Authorization: [{V}]
    method: POST
    uri: https://billing.partner-api.net/v3/refunds
  response:
    body: {string: '{"ok": true}'}
    status: {code: 200, message: OK}
version: 1
""",
        "t8_masked",
        False,
    ),
    _t(
        "logs/api-access.log",
        r"""
10.2.0.14 - - [11/May/2024:03:12:09 +0000] "GET /v1/items HTTP/1.1" 200 512 "-" "okhttp/4.12" rid={V}
10.2.0.14 - - [11/May/2024:03:12:10 +0000] "GET /v1/items/9 HTTP/1.1" 200 133 "-" "okhttp/4.12" rid={V2}
10.2.0.19 - - [11/May/2024:03:12:11 +0000] "POST /v1/login HTTP/1.1" 401 64 "-" "curl/8.5.0" rid={V3}
""",
        "request_id",
        False,
    ),
    # -- bare key / consumer_key / client_secret / nonce / seed names, not credentials ------------
    _t(
        "training/train.py",
        r"""
import numpy as np
import torch

seed = {V}
np.random.seed(seed)
torch.manual_seed(seed)
""",
        "t8_rand_seed",
        False,
    ),
    _t(
        "web/templates/base.html",
        r"""
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <script nonce="{V}" src="/static/app.js"></script>
  <style nonce="{V}">body { margin: 0 }</style>
</head>
</html>
""",
        "csp_nonce",
        False,
    ),
    _t(
        "src/components/SettingsList.tsx",
        r"""
export function SettingsList({ items }: Props) {
  return (
    <ul>
      {items.map((item) => (
        <li key={item.id}>{t("{V}")}</li>
      ))}
    </ul>
  );
}
""",
        "t8_i18n_key",
        False,
    ),
    _t(
        "config/oauth1.example.py",
        r"""
# Copy to oauth1.py and fill in the values from the partner portal.
consumer_key = "{V}"
consumer_secret = "{V2}"
""",
        "t8_placeholder",
        False,
    ),
    _t(
        "deploy/nats/accounts.conf",
        r"""
accounts {
  DISPATCH {
    users = [
      { nkey: {V} }
      { nkey: {V2} }
    ]
  }
}
""",
        "nkey_public",
        False,
    ),
    _t(
        "keys/jwks.json",
        r"""
{
  "keys": [
    {
      "kty": "RSA",
      "kid": "courier-2024",
      "use": "sig",
      "alg": "RS256",
      "n": "{V}",
      "e": "AQAB"
    }
  ]
}
""",
        "rsa_n",
        False,
    ),
    _t(
        "lib/config/keys.dart",
        r"""
class Keys {
  static const String apiKey = {V};
}
""",
        "t8_dart_ref",
        False,
    ),
    # -- UUIDs that are identifiers -----------------------------------------------------------------
    _t(
        "Corp.Loyalty.sln",
        r"""
Microsoft Visual Studio Solution File, Format Version 12.00
# Visual Studio Version 17
Project("{FAE04EC0-301F-11D3-BF4B-00C04F79EFBC}") = "Loyalty.Api", "src\Loyalty.Api\Loyalty.Api.csproj", "{V}"
EndProject
Project("{FAE04EC0-301F-11D3-BF4B-00C04F79EFBC}") = "Loyalty.Core", "src\Loyalty.Core\Loyalty.Core.csproj", "{V2}"
EndProject
""",
        "t8_guid",
        False,
    ),
    _t(
        "terraform/azure.tf",
        r"""
provider "azurerm" {
  features {}
  subscription_id = "{V}"
  tenant_id       = "{V2}"
}
""",
        "request_id",
        False,
    ),
    # -- placeholders in the shell-continuation / Markdown / TOML shapes --------------------------
    _t(
        "CONTRIBUTING.md",
        r"""
## Running locally

Put these in `.env` (never commit real values):

```
COURIER_API_URL=https://sandbox.courierhq.com
COURIER_API_KEY={V}
```
""",
        "t8_placeholder",
        False,
    ),
    _t(
        "docs/configuration.md",
        r"""
| variable | default | meaning |
|----------|---------|---------|
| `DB_PASSWORD` | `{V}` | database password, set it before the first start |
| `API_TOKEN` | *(none)* | token for the partner API |
""",
        "t8_changeme",
        False,
    ),
    # -- test fixtures that are not credentials -------------------------------------------------------
    _t(
        "tests/fixtures/users.json",
        r"""
[
  {"model": "auth.user", "pk": 1, "fields": {"username": "dispatcher", "password": "{V}", "is_staff": true}},
  {"model": "auth.user", "pk": 2, "fields": {"username": "courier", "password": "{V2}", "is_staff": false}}
]
""",
        "t8_hash",
        False,
    ),
    # -- private-key shapes that are not usable secrets -----------------------------------------------
    _t(
        "tests/certs/mtls/ca-bundle.pem",
        r"""
# root
{V}
# intermediate
{V2}
""",
        "certificate",
        False,
    ),
    _t(
        "deploy/helm/courier/values-tls.yaml",
        r"""
tls:
  enabled: true
  cert: |
    {IV}
  key:
    existingSecret: courier-tls
""",
        "t8_public_key",
        False,
    ),
    _t(
        "certs/backup/archiver.key.enc",
        r"""
{V}
""",
        "t8_encrypted",
        False,
    ),
    _t(
        "ansible/roles/bastion/files/authorized_keys",
        r"""
{V}
{V2}
""",
        "t8_pgp_or_ssh_public",
        False,
    ),
    # -- placeholders and references in the same config files as the credentials -----------------
    _t(
        "ops/mysql/my.cnf.example",
        r"""
[client]
user=backup
password={V}
host=mysql-primary.corp.internal
""",
        "t8_placeholder",
        False,
    ),
    _t(
        "grafana/grafana.example.ini",
        r"""
[security]
admin_user = admin
admin_password = {V}
secret_key = {V2}
""",
        "t8_grafana_ref",
        False,
    ),
    _t(
        "monitoring/prometheus-remote.yml",
        r"""
remote_write:
  - url: https://prometheus-prod-01-eu-west-0.grafana.net/api/prom/push
    basic_auth:
      username: 412998
      password_file: {V}
""",
        "t8_secret_path",
        False,
    ),
    _t(
        "traefik/dynamic/auth.yml",
        r"""
http:
  middlewares:
    ops-auth:
      basicAuth:
        users:
          - "ops:{V}"
""",
        "apr1",
        False,
    ),
    _t(
        "haproxy/haproxy-hashed.cfg",
        r"""
userlist stats_users
    user admin password {V}
    user ops password {V2}
""",
        "sha512crypt",
        False,
    ),
    _t(
        "nginx/conf.d/partner.conf",
        r"""
location /partner/ {
    proxy_pass https://partner-api.vendor.net/;
    proxy_set_header Authorization "Basic {V}";
}
""",
        "t8_placeholder",
        False,
    ),
    _t(
        "puppet/data/secure.eyaml",
        r"""
---
profile::grafana::admin_password: >
  {V}
profile::postgres::replication_password: >
  {V2}
""",
        "t8_eyaml",
        False,
    ),
    _t(
        "salt/pillar/rabbitmq_gpg.sls",
        r"""
#!yaml|gpg
rabbitmq:
  users:
    dispatch:
      password: |
        {IV}
""",
        "t8_pgp_message",
        False,
    ),
    _t(
        "chef/data_bags/credentials/smtp_encrypted.json",
        r"""
{
  "id": "smtp",
  "password": {
    "encrypted_data": "{V}",
    "iv": "{V2}",
    "version": 1,
    "cipher": "aes-256-cbc"
  }
}
""",
        "csp_nonce",
        False,
    ),
    _t(
        "Pulumi.staging.yaml",
        r"""
config:
  aws:region: eu-west-1
  loyalty:dbPassword:
    secure: {V}
  loyalty:stripeKey:
    secure: {V2}
""",
        "t8_pulumi_secure",
        False,
    ),
    _t(
        "infra/cfn/database-ref.yaml",
        r"""
Resources:
  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      MasterUsername: admin
      MasterUserPassword: {V}
""",
        "tune7_iac_ref",
        False,
    ),
    _t(
        "infra/bicep/kv.bicep",
        r"""
@secure()
@description('Administrator password, from Key Vault at deploy time')
param adminPassword string

var connection = 'Server=tcp:${sqlServer.properties.fullyQualifiedDomainName};Password=${adminPassword};'
output secretUri string = '{V}'
""",
        "op_ref",
        False,
    ),
    _t(
        "infra/terraform/rds.tf",
        r"""
resource "aws_db_instance" "loyalty" {
  engine         = "postgres"
  instance_class = "db.t4g.medium"
  username       = "loyalty"
  password       = {V}
}
""",
        "tune6_tf_ref",
        False,
    ),
    _t(
        ".github/workflows/deploy.yml",
        r"""
name: deploy
on: workflow_dispatch
jobs:
  deploy:
    runs-on: ubuntu-latest
    env:
      CARGO_REGISTRY_TOKEN: {V}
    steps:
      - uses: actions/checkout@v4
""",
        "tune7_ci_ref",
        False,
    ),
    _t(
        ".github/workflows/pinned.yml",
        r"""
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@{V}  # v4.1.7
      - uses: actions/setup-node@{V2}  # v4.0.3
""",
        "git_sha",
        False,
    ),
    _t(
        "Jenkinsfile.shared",
        r"""
pipeline {
    agent any
    stages {
        stage('Publish') {
            steps {
                withCredentials([usernamePassword(credentialsId: '{V}', usernameVariable: 'U', passwordVariable: 'P')]) {
                    sh 'docker login -u "$U" -p "$P" registry.corp.net'
                }
            }
        }
    }
}
""",
        "secret_name",
        False,
    ),
    _t(
        "k8s/base/deployment.yaml",
        r"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pricing
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.corp.net/pricing@{V}
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: pricing-db
                  key: password
""",
        "t8_image_digest",
        False,
    ),
    _t(
        "home/ops/.kube/config-ca",
        r"""
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {V}
    server: https://k8s-prod.corp.net:6443
  name: prod
users:
- name: ops
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: ["eks", "get-token", "--cluster-name", "prod"]
""",
        "b64_cert",
        False,
    ),
    _t(
        "docker-compose.yml",
        r"""
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: checkout
      POSTGRES_PASSWORD_FILE: {V}
    secrets:
      - db_password
secrets:
  db_password:
    file: ./secrets/db_password.txt
""",
        "t8_secret_path",
        False,
    ),
    # -- credentials on documentation hosts and AWS documentation keys ------------------------------
    _t(
        "docs/deployment.rst",
        r"""
Configuration
=============

Point the service at your broker and database::

    BROKER_URL={V}
    DATABASE_URL={V2}

Both URLs accept the usual query options.
""",
        "t8_doc_uri",
        False,
    ),
    _t(
        "src/db/connection.example.js",
        r"""
// Example only: set DATABASE_URL in your environment.
const uri = process.env.DATABASE_URL || "{V}";
module.exports = uri;
""",
        "t8_doc_uri",
        False,
    ),
    _t(
        "docs/aws-setup.md",
        r"""
Configure the CLI profile used by the scripts:

```ini
[loyalty-dev]
{V}
```
""",
        "t8_aws_doc_ini",
        False,
    ),
    _t(
        "src/test/java/com/corp/archive/S3ClientTest.java",
        r"""
class S3ClientTest {
    {IV}
}
""",
        "t8_aws_doc_java",
        False,
    ),
    # -- hashes, checksums, digests ---------------------------------------------------------------------
    _t(
        "db/seeds/002_admin.sql",
        r"""
INSERT INTO users (email, password_hash, role) VALUES
  ('admin@corp.net', '{V}', 'admin'),
  ('ops@corp.net', '{V2}', 'ops');
""",
        "t8_hash",
        False,
    ),
    _t(
        "releases/SHA256SUMS",
        r"""
{V}  courier-gateway_3.4.1_linux_amd64.tar.gz
{V2}  courier-gateway_3.4.1_darwin_arm64.tar.gz
""",
        "hex64",
        False,
    ),
    _t(
        "package-lock.json",
        r"""
{
  "name": "checkout-web",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/axios": {
      "version": "1.7.2",
      "resolved": "https://registry.npmjs.org/axios/-/axios-1.7.2.tgz",
      "integrity": "{V}"
    }
  }
}
""",
        "sri",
        False,
    ),
    _t(
        "static/checksums.md5",
        r"""
{V}  app.bundle.js
{V2}  vendor.bundle.js
""",
        "hex32",
        False,
    ),
    # -- versions, images, fonts --------------------------------------------------------------------------
    _t(
        "build.gradle.kts",
        r"""
plugins {
    id("org.springframework.boot") version "{V}"
}

dependencies {
    implementation("io.nats:jnats:{V2}")
}
""",
        "t8_version",
        False,
    ),
    _t(
        "static/css/fonts.css",
        r"""
@font-face {
  font-family: "Inter";
  src: url(data:font/woff2;base64,{V}) format("woff2");
  font-display: swap;
}
""",
        "t8_font_b64",
        False,
    ),
    _t(
        "src/assets/logo.ts",
        r"""
export const LOGO_PNG = "data:image/png;base64,{V}";
""",
        "png_b64",
        False,
    ),
    # -- i18n and UI text about passwords ----------------------------------------------------------------
    _t(
        "src/i18n/auth.json",
        r"""
{
  "PASSWORD_INVALID": "{V}",
  "TOKEN_EXPIRED": "{V2}"
}
""",
        "t8_i18n",
        False,
    ),
    _t(
        "config/locales/en.yml",
        r"""
en:
  devise:
    passwords:
      secret_hint: "{V}"
      api_key_label: "{V2}"
""",
        "t8_ui_text",
        False,
    ),
    _t(
        "Resources/Localizable.strings",
        r"""
"password.placeholder" = "{V}";
"token.copy" = "{V2}";
""",
        "t8_i18n",
        False,
    ),
    _t(
        "src/errors/codes.ts",
        r"""
export const AUTH_ERRORS = {
  PASSWORD_EXPIRED: "{V}",
  INVALID_API_KEY: "{V2}",
  SECRET_ROTATED: "{V3}",
} as const;
""",
        "error_code",
        False,
    ),
    # -- public identifiers that look like keys -----------------------------------------------------------
    _t(
        "src/environments/environment.prod.ts",
        r"""
export const environment = {
  production: true,
  publicToken: "{V}",
};
""",
        "t8_public_id",
        False,
    ),
    _t(
        "ios/Loyalty/Maps.plist",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0">
<dict>
	<key>MBXAccessToken</key>
	<string>{V}</string>
</dict>
</plist>
""",
        "t8_mapbox_pk",
        False,
    ),
    _t(
        "src/main/resources/twilio.properties",
        r"""
twilio.account-sid={V}
twilio.messaging-service-sid={V2}
twilio.auth-token=${TWILIO_AUTH_TOKEN}
""",
        "t8_twilio_sid",
        False,
    ),
    # -- changeme / x / * runs in context ----------------------------------------------------------------
    _t(
        "deploy/helm/courier/values.yaml",
        r"""
postgresql:
  auth:
    username: courier
    # must be overridden per environment (helm install --set ...)
    password: "{V}"
""",
        "t8_changeme",
        False,
    ),
    _t(
        "android/gradle.properties.example",
        r"""
RELEASE_STORE_FILE=../keystore/release.jks
RELEASE_STORE_PASSWORD={V}
RELEASE_KEY_PASSWORD={V2}
""",
        "t8_placeholder",
        False,
    ),
    _t(
        "logs/deploy-2024-06-01.log",
        r"""
[deploy] using registry user ci-pusher, password {V}
[deploy] pushed registry.corp.net/courier:3.4.1
""",
        "t8_masked",
        False,
    ),
    # -- references in code ---------------------------------------------------------------------------
    _t(
        "src/main/kotlin/com/corp/mail/MailConfig.kt",
        r"""
@Configuration
class MailConfig {
    @Bean
    fun sender() = JavaMailSenderImpl().apply {
        host = "smtp.corp.net"
        username = "noreply@corp.net"
        password = {V}
    }
}
""",
        "t8_jvm_ref",
        False,
    ),
    _t(
        "scripts/Connect-Vault.ps1",
        r"""
$secret = {V}
Connect-AzAccount -ServicePrincipal -Tenant $env:ARM_TENANT_ID -Credential $secret
""",
        "tune7_ps_ref",
        False,
    ),
    _t(
        "notebooks/warehouse_env.ipynb",
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import os\n",
    "password = {V}\n"
   ]
  }
 ],
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t8_nb_ref",
        False,
    ),
    _t(
        "src/main/resources/application.yml",
        r"""
spring:
  datasource:
    url: jdbc:postgresql://pg.corp.internal:5432/pricing
    username: pricing
    password: {V}
  mail:
    password: {V2}
""",
        "tune7_spring_ref",
        False,
    ),
    _t(
        "docs/wiki/Onboarding.md",
        r"""
## Getting access

1. Ask IT for a VPN account.
2. Your first password is sent by SMS; the form field is called `{V}`.
3. Create an API token under *Profile → Tokens* and keep it in your password manager.
""",
        "form_field",
        False,
    ),
    _t(
        ".github/ISSUE_TEMPLATE/bug_report.md",
        r"""
---
name: Bug report
about: Something is broken
---

**Config** (remove secrets!)

```yaml
api_key: {V}
endpoint: https://api.courierhq.com
```
""",
        "t8_placeholder",
        False,
    ),
    _t(
        "ansible/group_vars/prod/vault.yml",
        r"""
vault_db_password: !vault |
  {IV}
""",
        "ansible_vault",
        False,
    ),
    _t(
        "secrets/prod.enc.yaml",
        r"""
db:
    password: {V}
stripe:
    key: {V2}
sops:
    version: 3.8.1
""",
        "sops_value",
        False,
    ),
    _t(
        "config/kms.json",
        r"""
{
  "CiphertextBlob": "{V}",
  "KeyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
}
""",
        "t8_kms_blob",
        False,
    ),
]

#: ``evalset.build`` makes this part's values with this class.
VALUES = Tune8Values
