"""Blind part ``tune21``: Marrowby Market, a fictional online marketplace, and its payments arm
Marrowby Pay. Files are the storefront and seller portal (Node/TypeScript services, a Next.js
shop, the Rails seller portal, PHP Magento modules and a WooCommerce connector plugin), the
payment gateway and ledger (Go, Java/Spring, Rust; acquirer and PSP clients for Adyen, Stripe,
Braintree and PayPal), search and recommendations (Python, Elasticsearch/OpenSearch, Redis,
feature notebooks), warehouse and courier integrations (C#/.NET, SOAP/XML configs with
WS-Security, SFTP and EDI scripts), the mobile apps (Flutter, Kotlin/Android, Swift/iOS),
infrastructure (Terraform, Kubernetes manifests, Helm values, Ansible, Nginx and HAProxy), CI
(GitLab CI, CircleCI, Buildkite) and the docs, support macros, incident reviews and chat
exports, in English, German, Portuguese and Japanese.

Written blind, to be tuned on: without seeing the scanner, its rules, its output or other
parts' templates (only ``evalset.py`` and the head of ``eval_heldout11.py`` as an example).

Credentials (positive) are passwords of every strength (vendor defaults such as RabbitMQ's
``guest`` and OpenSearch's ``admin`` on real hosts, dictionary words, ``admin123``), shared
secrets, service tokens in their real shapes (CRC-checked GitHub and npm tokens, Stripe, Adyen,
Braintree, PayPal, Slack, GitLab, Buildkite, CircleCI, Docker Hub, Datadog, Vault...), real
unencrypted private keys (PKCS#1, PKCS#8, SEC1, OpenSSH, Apple ``.p8``), URI credentials,
Basic-auth strings, webhook URLs with secrets, credentials in prose, CLI arguments, tests,
commented-out lines and ``${VAR:-x}`` defaults.

Look-alikes (negative) sit in the same kinds of files under the same key names: references to
environment variables, secret stores and CI variables, placeholders and redactions in four
languages, role words (``password``/``senha``), hashes (bcrypt, argon2, phpass, Magento),
encrypted values (SOPS, Ansible Vault, sealed secrets, Jasypt, Rails credentials), public keys
and certificates, identifiers shaped like secrets (Stripe object ids, PSP references, trace ids,
digests, account and tenant ids), UI and i18n text about passwords, documented example
credentials, credentials on documentation hosts and test values that say they are fake.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import string
import zlib

import evalset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

MULTI_SLOT = True

HEX = "0123456789abcdef"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B64 = ALNUM + "+/"
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PW_SYMBOLS = "!#%*-_=+.@?"
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _t(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    """A template; ``text`` starts with a newline (dropped) so it can sit at column 0."""
    return (path, text[1:] if text.startswith("\n") else text, kind, positive)


class Tune21Values(evalset.Values):
    """Value generators of the tune21 part; every slot generator's name starts with ``t21_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "bazaar",
            "parcel",
            "satchel",
            "ferret",
            "quince",
            "tamarind",
            "bobbin",
            "cobble",
            "thimble",
            "marrow",
            "sorrel",
            "gannet",
            "pewter",
            "lantana",
            "kumquat",
        ]
        self.users = [
            "storefront",
            "seller_portal",
            "ledger",
            "gateway",
            "recs",
            "search_ro",
            "wms_sync",
            "courier",
            "edi",
            "payouts",
        ]
        self._ca: rsa.RSAPrivateKey | None = None

    # ------------------------------------------------------------------ helpers (not slots)
    def _b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def _crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def _armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def _is_prime(self, n: int) -> bool:
        for p in SMALL_PRIMES:
            if n % p == 0:
                return n == p
        d, r = n - 1, 0
        while d % 2 == 0:
            d //= 2
            r += 1
        for _ in range(12):
            a = self.rng.randrange(2, n - 2)
            x = pow(a, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    def _prime(self, bits: int) -> int:
        while True:
            c = self.rng.getrandbits(bits) | (3 << (bits - 2)) | 1
            if (c - 1) % 65537 and self._is_prime(c):
                return c

    def _rsa(self, bits: int = 2048) -> rsa.RSAPrivateKey:
        """A real RSA key from the seeded generator (cryptography's own keygen is not seeded)."""
        e = 65537
        p = self._prime(bits // 2)
        q = self._prime(bits // 2)
        while q == p:
            q = self._prime(bits // 2)
        if p < q:
            p, q = q, p
        d = pow(e, -1, (p - 1) * (q - 1))
        numbers = rsa.RSAPrivateNumbers(
            p,
            q,
            d,
            rsa.rsa_crt_dmp1(d, p),
            rsa.rsa_crt_dmq1(d, q),
            rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(e, p * q),
        )
        return numbers.private_key()

    def _ec(self) -> ec.EllipticCurvePrivateKey:
        return ec.derive_private_key(self.rng.getrandbits(250) + 2, ec.SECP256R1())

    def _pem(self, key, fmt: serialization.PrivateFormat) -> str:  # type: ignore[no-untyped-def]
        return (
            key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
            .decode()
            .strip()
        )

    def _host(self) -> str:
        return self.pick(
            [
                "marrowby.internal",
                "mbpay.internal",
                "eu-central-1.rds.amazonaws.com",
                "prod.marrowby.net",
            ]
        )

    # ------------------------------------------------------------------ positives: passwords
    def t21_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*?"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 22), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Mb" + self.s(13, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(20, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + self.pick(["#", "$", "!"]) + self.s(4, DIGITS)

    def t21_weak_pw(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(
                [
                    "admin123",
                    "Marrowby1",
                    "Welcome1!",
                    "qwerty123",
                    "password1",
                    "letmein",
                    "sunshine",
                    "Passwort1",
                    "senha123",
                    "Senha@123",
                    "sakura2024",
                    "dragon",
                    "football",
                    "iloveyou",
                ]
            )
        if shape == 1:
            return "Marrowby" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["", "1", "123", "2024", "!"])
        if shape == 3:
            season = self.pick(["Summer", "Winter", "Sommer", "Herbst", "Verao", "Inverno"])
            return season + str(self.rng.randrange(2019, 2026)) + self.pick(["", "!"])
        return self.pick(["Tokyo", "Berlin", "Lisboa", "Porto", "Osaka"]) + str(
            self.rng.randrange(100, 999)
        )

    def t21_admin_default(self) -> str:
        """Vendor defaults left on real hosts (OpenSearch, Grafana, Magento admin, routers)."""
        return self.pick(["admin", "admin", "admin123", "Admin@123", "root"])

    def t21_minio_default(self) -> str:
        return self.pick(["minioadmin", "minioadmin", "minio123"])

    def t21_keystore_default(self) -> str:
        return self.pick(["changeit", "changeit", "123456"])

    def t21_rabbit_default(self) -> str:
        return self.pick(["guest", "guest", "guest"])

    def t21_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS) + self.s(3, ALNUM)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 24), ALNUM + "-_.~")

    def t21_passphrase(self) -> str:
        sep = self.pick(["-", " ", ".", "_"])
        return sep.join(self.pick(self.words) for _ in range(4)) + sep + self.s(2, DIGITS)

    def t21_b64_pw(self) -> str:
        return base64.b64encode(self.t21_pw().encode()).decode()

    def t21_basic(self) -> str:
        user = self.pick([*self.users, "svc-checkout", "ci-deploy", "courier-api"])
        return base64.b64encode(f"{user}:{self.t21_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: shared secrets
    def t21_hex32(self) -> str:
        return self.s(32, HEX)

    def t21_secret_key_base(self) -> str:
        return self.s(128, HEX)

    def t21_hmac(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self._b64(32)
        if shape == 1:
            return self._b64(48, urlsafe=True, pad=False)
        return self.s(40, URLSAFE)

    def t21_wp_salt(self) -> str:
        return self.s(64, ALNUM + "!#%&()*+,-.:;<=>?@[]^_{|}~")

    def t21_internal_key(self) -> str:
        return self.pick(["mbk_live_", "mbp_sk_live_", "mbk_srv_"]) + self.s(32, ALNUM)

    # ------------------------------------------------------------------ positives: vendor tokens
    def t21_github(self) -> str:
        return self._crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t21_npm(self) -> str:
        return self._crc_token("npm")

    def t21_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t21_gitlab_runner(self) -> str:
        return "glrt-" + self.s(20, URLSAFE)

    def t21_slack_bot(self) -> str:
        return (
            f"xox{self.pick(['b', 'b', 'p'])}-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-"
            f"{self.s(24, ALNUM)}"
        )

    def t21_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def t21_teams_webhook(self) -> str:
        tenant = self.t21_uuid()
        group = self.t21_uuid()
        return (
            f"https://marrowby.webhook.office.com/webhookb2/{group}@{tenant}/IncomingWebhook/"
            f"{self.s(32, HEX)}/{self.t21_uuid()}/V2{self.s(43, URLSAFE)}"
        )

    def t21_stripe_sk(self) -> str:
        return self.pick(["sk_live_51", "rk_live_51"]) + self.s(97, ALNUM)

    def t21_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def t21_adyen_key(self) -> str:
        return (
            "AQE"
            + self.s(2, "hjy")
            + "hmf"
            + self.s(27, B64)
            + "=-"
            + self.s(43, B64)
            + "=-"
            + self.s(14, ALNUM + "<>[]()#")
        )

    def t21_adyen_hmac(self) -> str:
        return self.s(64, "0123456789ABCDEF")

    def t21_braintree(self) -> str:
        return f"access_token$production${self.s(16, LOWNUM)}${self.s(32, HEX)}"

    def t21_paypal_secret(self) -> str:
        return "E" + self.s(79, URLSAFE)

    def t21_aws_pair(self) -> str:
        """An access key id and its secret on two lines (one credential)."""
        key_id = "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def t21_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    def t21_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t21_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t21_mailgun(self) -> str:
        return "key-" + self.s(32, HEX)

    def t21_datadog(self) -> str:
        return self.s(32, HEX)

    def t21_datadog_app(self) -> str:
        return self.s(40, HEX)

    def t21_pagerduty(self) -> str:
        return self.s(32, HEX)

    def t21_newrelic(self) -> str:
        return "NRAK-" + self.s(27, UPNUM)

    def t21_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def t21_buildkite(self) -> str:
        return "bkua_" + self.s(40, HEX)

    def t21_buildkite_agent(self) -> str:
        return self.s(50, LOWNUM)

    def t21_circleci(self) -> str:
        return f"CCIPAT_{self.s(22, ALNUM)}_{self.s(40, HEX)}"

    def t21_vault_token(self) -> str:
        return "hvs.CAESI" + self.s(82, URLSAFE)

    def t21_tfc_token(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def t21_azure_storage_key(self) -> str:
        return self._b64(64)

    def t21_es_apikey(self) -> str:
        return base64.b64encode(f"{self.s(20, URLSAFE)}:{self.s(22, URLSAFE)}".encode()).decode()

    def t21_fcm_server(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t21_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t21_algolia_admin(self) -> str:
        return self.s(32, HEX)

    def t21_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t21_woo_secret(self) -> str:
        return "cs_" + self.s(40, HEX)

    def t21_magento_token(self) -> str:
        return self.s(32, LOWNUM)

    def t21_sentry_auth(self) -> str:
        claims = {
            "iat": 1710000000 + self.rng.randrange(10**7),
            "url": "https://sentry.io",
            "region_url": "https://de.sentry.io",
            "org": "marrowby",
        }
        body = base64.b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode()
        return f"sntrys_{body.rstrip('=')}_{self.s(43, URLSAFE)}"

    def t21_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "sub": self.pick(["svc:ledger", "svc:payouts", "svc:wms-sync", "svc:recs"]),
                "iss": "auth.marrowby.net",
                "iat": 1700000000 + self.rng.randrange(10**7),
                "scope": self.pick(["payments:write", "orders:read", "catalog:admin"]),
            }
        )
        return f"{header}.{payload}.{self._b64(32, urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ positives: private keys
    def t21_rsa_key(self) -> str:
        return self._pem(self._rsa(), serialization.PrivateFormat.TraditionalOpenSSL)

    def t21_pkcs8_key(self) -> str:
        key = self._rsa() if self.rng.randrange(2) else self._ec()
        return self._pem(key, serialization.PrivateFormat.PKCS8)

    def t21_ec_key(self) -> str:
        return self._pem(self._ec(), serialization.PrivateFormat.TraditionalOpenSSL)

    def t21_p8_key(self) -> str:
        """An App Store Connect / APNs ``.p8`` key: PKCS#8 P-256."""
        return self._pem(self._ec(), serialization.PrivateFormat.PKCS8)

    def t21_gcp_key_json(self) -> str:
        pem = self._pem(self._rsa(), serialization.PrivateFormat.PKCS8)
        return pem.replace("\n", "\\n") + "\\n"

    def t21_openssh_key(self) -> str:
        seed = self.rng.randbytes(32)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

        def sstr(b: bytes) -> bytes:
            return len(b).to_bytes(4, "big") + b

        blob = sstr(b"ssh-ed25519") + sstr(pub)
        check = self.rng.randbytes(4)
        comment = f"{self.pick(self.users)}@{self.pick(['edi-gw01', 'ci-runner', 'bastion'])}"
        priv = check + check + sstr(b"ssh-ed25519") + sstr(pub) + sstr(seed + pub)
        priv += sstr(comment.encode())
        pad = 1
        while len(priv) % 8:
            priv += bytes([pad])
            pad += 1
        der = b"openssh-key-v1\x00" + sstr(b"none") + sstr(b"none") + sstr(b"")
        der += (1).to_bytes(4, "big") + sstr(blob) + sstr(priv)
        return self._armor("OPENSSH PRIVATE KEY", der, 70)

    # ------------------------------------------------------------------ negatives: references
    def t21_env_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${LEDGER_DB_PASSWORD}",
                "$REDIS_PASSWORD",
                "${SFTP_PASSWORD:?missing}",
                "$(cat /run/secrets/db_password)",
                "${env:COURIER_API_KEY}",
                "%COURIER_API_KEY%",
            ]
        )

    def t21_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.STRIPE_SECRET_KEY",
                "process.env.DATABASE_PASSWORD",
                "process.env['REDIS_PASSWORD'] ?? ''",
                "config.get<string>('payments.adyen.apiKey')",
                "await secrets.get('storefront/session-secret')",
            ]
        )

    def t21_ruby_ref(self) -> str:
        return self.pick(
            [
                'ENV["SELLER_DB_PASSWORD"]',
                "ENV.fetch('STRIPE_SECRET_KEY')",
                "Rails.application.credentials.dig(:stripe, :secret_key)",
                "Rails.application.credentials.smtp_password",
                "<%= ENV['DATABASE_PASSWORD'] %>",
            ]
        )

    def t21_php_ref(self) -> str:
        return self.pick(
            [
                "getenv('MAGENTO_DB_PASSWORD')",
                "$_ENV['WOO_CONSUMER_SECRET']",
                "$this->scopeConfig->getValue('marrowby/api/secret')",
                "get_option('marrowby_api_secret')",
                "$this->encryptor->decrypt($stored)",
            ]
        )

    def t21_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("LEDGER_DB_PASSWORD")',
                "cfg.Adyen.APIKey",
                'viper.GetString("stripe.secret_key")',
                'secret.Data["password"]',
                'mustEnv("PSP_HMAC_KEY")',
            ]
        )

    def t21_java_ref(self) -> str:
        return self.pick(
            [
                "${LEDGER_DB_PASSWORD}",
                "${vault.ledger.db-password}",
                "${PAYPAL_CLIENT_SECRET:}",
                "#{environment['BRAINTREE_PRIVATE_KEY']}",
                "${sm://projects/marrowby-pay/secrets/adyen-api-key}",
            ]
        )

    def t21_rust_ref(self) -> str:
        return self.pick(
            [
                'std::env::var("LEDGER_DB_PASSWORD")?',
                'env!("SETTLEMENT_HMAC_KEY")',
                'settings.get_string("acquirer.api_key")?',
                'secrecy::SecretString::new(std::env::var("PSP_KEY")?)',
            ]
        )

    def t21_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["OPENSEARCH_PASSWORD"]',
                'os.getenv("REDIS_PASSWORD")',
                "settings.ES_API_KEY",
                'Variable.get("recs_es_password")',
                'dbutils.secrets.get(scope="recs", key="es-password")',
            ]
        )

    def t21_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("COURIER_PASSWORD")',
                'configuration["Courier:ApiKey"]',
                "_options.Value.SftpPassword",
                'await secretClient.GetSecretAsync("wms-db-password")',
            ]
        )

    def t21_mobile_ref(self) -> str:
        return self.pick(
            [
                "String.fromEnvironment('MARROWBY_API_KEY')",
                "BuildConfig.MARROWBY_API_KEY",
                'System.getenv("ANDROID_KEYSTORE_PASSWORD")',
                "$(MARROWBY_API_KEY)",
                'ProcessInfo.processInfo.environment["APNS_KEY"]',
                "dotenv.env['PAY_SDK_KEY']",
            ]
        )

    def t21_ci_ref(self) -> str:
        return self.pick(
            [
                "$NPM_TOKEN",
                "${CI_JOB_TOKEN}",
                "$DOCKERHUB_TOKEN",
                "${BUILDKITE_PLUGIN_SECRET}",
                '"$(buildkite-agent secret get registry_password)"',
                "$CIRCLE_TOKEN",
                "${{ secrets.NPM_TOKEN }}",
            ]
        )

    def t21_vault_ref(self) -> str:
        return self.pick(
            [
                "vault:secret/data/marrowby-pay/ledger#db_password",
                "op://Payments/Adyen live/api key",
                "arn:aws:secretsmanager:eu-central-1:"
                + self.s(12, DIGITS)
                + ":secret:pay/psp-"
                + self.s(6, ALNUM),
                "projects/marrowby-prod/secrets/opensearch-admin/versions/latest",
                "@Microsoft.KeyVault(SecretUri=https://kv-mbwh-prod.vault.azure.net/secrets/sftp-pass/)",
                "ref+vault://secret/storefront#/session_secret",
            ]
        )

    def t21_tf_ref(self) -> str:
        return self.pick(
            [
                "var.ledger_db_password",
                "random_password.ledger.result",
                "data.aws_secretsmanager_secret_version.psp.secret_string",
                'data.vault_generic_secret.opensearch.data["password"]',
                "local.redis_auth_token",
            ]
        )

    def t21_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.postgresql.auth.password }}",
                '{{ required "db password" .Values.db.password }}',
                "{{ .Values.global.redis.password | quote }}",
                '{{ include "marrowby.secretName" . }}',
            ]
        )

    def t21_ansible_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_rabbitmq_password }}",
                "{{ lookup('env', 'HAPROXY_STATS_PASSWORD') }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/edi:password') }}",
                "{{ sftp_partner_password }}",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def t21_placeholder(self) -> str:
        return self.pick(
            [
                "<password>",
                "<your-api-key>",
                "CHANGE_ME",
                "xxxxxxxxxxxxxxxx",
                "<Passwort>",
                "<senha>",
                "<パスワード>",
                "YOUR_SECRET_HERE",
                "REPLACE_WITH_LIVE_KEY",
                "TODO",
                "...",
                "<insert token>",
                "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                "<ihr-token>",
                "<seu-token-aqui>",
            ]
        )

    def t21_redacted(self) -> str:
        return self.pick(
            [
                "********",
                "[REDACTED]",
                "[ENTFERNT]",
                "[removido]",
                "＊＊＊＊＊＊",
                "<redacted>",
                "xxxx (rotated)",
                "•••••••••",
                "[マスク済み]",
            ]
        )

    def t21_role_word(self) -> str:
        return self.pick(
            ["password", "Passwort", "senha", "secret", "pass", "passwd", "パスワード"]
        )

    def t21_fake(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "not-a-real-secret",
                "dummy_password_do_not_use",
                "test-only-" + self.s(4, LOWNUM) + "-fake",
                "FAKE_" + self.s(8, UPNUM) + "_NOT_REAL",
                "sk_live_FAKEFAKEFAKEFAKEFAKEFAKE",
                "mock-api-key",
                "senha-falsa-para-teste",
                "ダミーパスワード",
            ]
        )

    def t21_doc_example(self) -> str:
        """Credentials published in vendors' documentation."""
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "xoxb-not-a-real-token-this-will-not-work",
                "SG.xxxxxxxxxxxxxxxxxxxxxx.yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
            ]
        )

    def t21_doc_pw(self) -> str:
        """A password as written in docs on documentation hosts (example.com, .test, .invalid)."""
        return self.pick(self.words) + self.s(self.rng.randrange(2, 5), DIGITS)

    # ------------------------------------------------------------------ negatives: hashes, encrypted
    def t21_bcrypt(self) -> str:
        return (
            self.pick(["$2a$", "$2b$", "$2y$"])
            + self.pick(["10", "11", "12"])
            + "$"
            + self.s(53, ALNUM + "./")
        )

    def t21_argon2(self) -> str:
        return (
            "$argon2id$v=19$m=65536,t=3,p=4$"
            + self._b64(16, pad=False)
            + "$"
            + self._b64(32, pad=False)
        )

    def t21_phpass(self) -> str:
        return "$P$B" + self.s(30, ALNUM + "./")

    def t21_magento_hash(self) -> str:
        return f"{self.s(64, HEX)}:{self.s(32, ALNUM)}:{self.pick(['1', '2', '3_32_2_67108864'])}"

    def t21_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t21_sha1(self) -> str:
        return self.s(40, HEX)

    def t21_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def t21_sri(self) -> str:
        return "sha512-" + self._b64(64)

    def t21_wsse_digest(self) -> str:
        """A WS-Security PasswordDigest or nonce: base64 of a SHA-1 digest or random bytes."""
        return self._b64(self.pick([16, 20]))

    def t21_gosum(self) -> str:
        return "h1:" + self._b64(32)

    def t21_sha512crypt(self) -> str:
        crypt = ALNUM + "./"
        return f"$6${self.s(16, crypt)}${self.s(86, crypt)}"

    def t21_apr1(self) -> str:
        crypt = ALNUM + "./"
        return f"$apr1${self.s(8, crypt)}${self.s(22, crypt)}"

    def t21_sops(self) -> str:
        return (
            f"ENC[AES256_GCM,data:{self._b64(self.rng.randrange(12, 40))},iv:{self._b64(32)},"
            f"tag:{self._b64(16)},type:str]"
        )

    def t21_ansible_vault(self) -> str:
        body = self.s(self.rng.randrange(5, 8) * 80, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t21_sealed(self) -> str:
        return "AgB" + self._b64(self.rng.randrange(300, 560))

    def t21_jasypt(self) -> str:
        return f"ENC({self._b64(self.rng.randrange(24, 48))})"

    def t21_rails_enc(self) -> str:
        return f"{self._b64(self.rng.randrange(90, 200))}--{self._b64(12)}--{self._b64(16)}"

    def t21_kms_blob(self) -> str:
        return "AQICAHi" + self._b64(self.rng.randrange(150, 200))

    # ------------------------------------------------------------------ negatives: public material
    def t21_cert(self) -> str:
        if self._ca is None:
            self._ca = self._rsa()
        leaf = self._ec()
        cn = self.pick(
            [
                "pay.marrowby.net",
                "api.marrowby.com",
                "sftp.partner-couriers.de",
                "edi.marrowby.internal",
                "checkout.marrowby.com.br",
            ]
        )
        start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            days=self.rng.randrange(600)
        )
        issuer = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Marrowby Market GmbH"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Marrowby Internal Issuing CA R2"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(issuer)
            .public_key(leaf.public_key())
            .serial_number(self.rng.getrandbits(120) + 1)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=397))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(self._ca, hashes.SHA256(), rsa_padding=padding.PKCS1v15())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode().strip()

    def t21_public_key(self) -> str:
        key = self._ec() if self.rng.randrange(3) else self._rsa(2048)
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
        )

    def t21_ssh_pub(self) -> str:
        key = ed25519.Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))
        line = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        return (
            f"{line} {self.pick(self.users)}@{self.pick(['edi-gw01', 'laptop-lis', 'ci-runner'])}"
        )

    def t21_stripe_pk(self) -> str:
        return "pk_live_51" + self.s(97, ALNUM)

    # ------------------------------------------------------------------ negatives: ids shaped like secrets
    def t21_uuid(self) -> str:
        h = self.s(32, HEX)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{self.pick(list('89ab'))}{h[17:20]}-{h[20:]}"

    def t21_stripe_obj(self) -> str:
        return self.pick(["pi_3", "ch_3", "cus_", "acct_1", "evt_1", "re_3", "po_1"]) + self.s(
            self.rng.randrange(14, 24), ALNUM
        )

    def t21_psp_ref(self) -> str:
        return self.pick(["", "", "MB"]) + self.s(16, DIGITS)

    def t21_trace_id(self) -> str:
        return self.s(32, HEX)

    def t21_account_id(self) -> str:
        return self.s(12, DIGITS)

    def t21_tracking(self) -> str:
        return self.pick(
            [
                "1Z" + self.s(16, UPNUM),
                "JD" + self.s(18, DIGITS),
                self.s(12, DIGITS),
                "LX" + self.s(9, DIGITS) + "BR",
            ]
        )

    def t21_es_cloud_id(self) -> str:
        inner = f"eu-central-1.aws.cloud.es.io:443${self.s(32, HEX)}${self.s(32, HEX)}"
        return "marrowby-search:" + base64.b64encode(inner.encode()).decode()

    def t21_firebase_app_id(self) -> str:
        return f"1:{self.s(12, DIGITS)}:{self.pick(['android', 'ios', 'web'])}:{self.s(16, HEX)}"

    def t21_ean(self) -> str:
        body = [int(c) for c in self.s(12, DIGITS)]
        check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
        return "".join(map(str, body)) + str(check)

    def t21_iban_test(self) -> str:
        return self.pick(
            ["DE89370400440532013000", "PT50000201231234567890154", "GB82WEST12345698765432"]
        )

    # ------------------------------------------------------------------ negatives: text
    def t21_i18n_de(self) -> str:
        return self.pick(
            [
                "Passwort vergessen?",
                "Das Passwort muss mindestens 12 Zeichen lang sein.",
                "Token ungültig oder abgelaufen",
                "Ihr API-Schlüssel wurde neu erstellt.",
                "Bitte geben Sie Ihr Passwort ein.",
                "Passwörter stimmen nicht überein",
            ]
        )

    def t21_i18n_pt(self) -> str:
        return self.pick(
            [
                "Esqueceu sua senha?",
                "A senha deve ter pelo menos 12 caracteres.",
                "Chave de API inválida",
                "Digite sua senha",
                "As senhas não coincidem",
                "Sua chave de API foi gerada novamente.",
            ]
        )

    def t21_i18n_ja(self) -> str:
        return self.pick(
            [
                "パスワードをお忘れですか？",
                "パスワードは12文字以上で入力してください。",
                "APIキーが無効です",
                "パスワードが一致しません",
                "APIキーを再発行しました。",
                "パスワードを入力してください",
            ]
        )

    def t21_policy(self) -> str:
        return self.pick(
            [
                "^(?=.*[A-Z])(?=.*\\d).{12,}$",
                "min_length=12",
                "12",
                "16",
                "bcrypt",
                "argon2id",
                "PT15M",
                "86400",
            ]
        )


TEMPLATES: list[evalset.Template] = [
    # ====================================================================== storefront (Node/Next.js)
    _t(
        "storefront/web/.env.production",
        "t21_url_pw",
        True,
        r"""
# Marrowby storefront - production runtime env (copied from the old droplet, do not commit)
NODE_ENV=production
NEXT_PUBLIC_SITE_URL=https://www.marrowby.com
NEXT_PUBLIC_DEFAULT_LOCALE=de-DE
NEXT_PUBLIC_LOCALES=de-DE,en-GB,pt-BR,ja-JP
DATABASE_URL=postgresql://storefront:{V}@pg-storefront-01.prod.marrowby.net:5432/storefront?sslmode=require
REDIS_URL=rediss://default:{V2}@redis-sessions.prod.marrowby.net:6380/0
CATALOG_API_URL=http://catalog-api.catalog.svc.cluster.local:8080
IMAGE_CDN=https://img.marrowby-cdn.com
REVALIDATE_SECONDS=300
LOG_LEVEL=info
""",
    ),
    _t(
        "storefront/web/.env.example",
        "t21_placeholder",
        False,
        r"""
# Copy to .env.local and fill in. Never commit .env.local.
NODE_ENV=development
NEXT_PUBLIC_SITE_URL=http://localhost:3000
DATABASE_URL=postgresql://storefront:{V}@localhost:5432/storefront
NEXTAUTH_URL=http://localhost:3000
NEXTAUTH_SECRET={V2}
STRIPE_SECRET_KEY={V3}
STRIPE_WEBHOOK_SECRET={V4}
ALGOLIA_ADMIN_KEY={V5}
# Ask #team-storefront for the staging values, they live in 1Password ("Storefront staging").
""",
    ),
    _t(
        "storefront/web/.env.local",
        "t21_hmac",
        True,
        r"""
# local overrides for Ines' machine - talking to staging services
NEXTAUTH_URL=http://localhost:3000
NEXTAUTH_SECRET={V}
SESSION_COOKIE_SECRET={V2}
PREVIEW_MODE_SECRET={V3}
NEXT_PUBLIC_FEATURE_FLAGS=new-checkout,reviews-v2
CATALOG_API_URL=https://catalog.staging.marrowby.net
""",
    ),
    _t(
        "storefront/web/src/lib/payments/stripe.ts",
        "t21_js_ref",
        False,
        r"""
import Stripe from "stripe";
import { logger } from "@/lib/logger";

const apiKey = {V};
if (!apiKey) {
  throw new Error("STRIPE_SECRET_KEY is not configured");
}

export const stripe = new Stripe(apiKey, {
  apiVersion: "2024-06-20",
  maxNetworkRetries: 2,
  appInfo: { name: "marrowby-storefront", version: process.env.APP_VERSION ?? "dev" },
});

export const webhookSecret = {V2};

export async function createPaymentIntent(orderId: string, amount: number, currency: string) {
  logger.info({ orderId, amount, currency }, "creating payment intent");
  return stripe.paymentIntents.create(
    { amount, currency, metadata: { orderId }, automatic_payment_methods: { enabled: true } },
    { idempotencyKey: `pi-${orderId}` },
  );
}
""",
    ),
    _t(
        "storefront/web/src/lib/payments/stripe.legacy.ts",
        "t21_stripe_sk",
        True,
        r"""
// LEGACY: kept until the Black Friday freeze is over, then delete (MBM-4412)
import Stripe from "stripe";

// const stripe = new Stripe(process.env.STRIPE_SECRET_KEY!, { apiVersion: "2023-10-16" });
const stripe = new Stripe("{V}", { apiVersion: "2023-10-16" });

export async function refundCharge(chargeId: string, amountCents?: number) {
  return stripe.refunds.create({ charge: chargeId, amount: amountCents });
}

export default stripe;
""",
    ),
    _t(
        "storefront/web/src/app/api/webhooks/stripe/route.test.ts",
        "t21_fake",
        False,
        r"""
import { describe, expect, it, vi } from "vitest";
import Stripe from "stripe";
import { POST } from "./route";

// These are deliberately fake: Stripe only checks the signature we compute below.
const WEBHOOK_SECRET = "{V}";
const API_KEY = "{V2}";

vi.mock("@/lib/payments/stripe", () => ({
  stripe: new Stripe(API_KEY, { apiVersion: "2024-06-20" }),
  webhookSecret: WEBHOOK_SECRET,
}));

describe("POST /api/webhooks/stripe", () => {
  it("rejects a bad signature", async () => {
    const req = new Request("http://localhost/api/webhooks/stripe", {
      method: "POST",
      headers: { "stripe-signature": "t=1,v1=deadbeef" },
      body: JSON.stringify({ id: "evt_test", type: "payment_intent.succeeded" }),
    });
    const res = await POST(req);
    expect(res.status).toBe(400);
  });
});
""",
    ),
    _t(
        "storefront/web/next.config.mjs",
        "t21_stripe_pk",
        False,
        r"""
/** @type {import('next').NextConfig} */
const nextConfig = {
  reactStrictMode: true,
  output: "standalone",
  i18n: undefined,
  images: {
    remotePatterns: [{ protocol: "https", hostname: "img.marrowby-cdn.com" }],
  },
  env: {
    // publishable key, safe to ship to the browser
    NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY: "{V}",
  },
  experimental: { serverActions: { bodySizeLimit: "2mb" } },
};

export default nextConfig;
""",
    ),
    _t(
        "storefront/web/src/i18n/messages/de.json",
        "t21_i18n_de",
        False,
        r"""
{
  "account": {
    "title": "Mein Konto",
    "email": "E-Mail-Adresse",
    "password": "Passwort",
    "passwordHint": "{V}",
    "forgot": "{V2}",
    "submit": "Anmelden"
  },
  "checkout": {
    "title": "Kasse",
    "payWith": "Bezahlen mit",
    "marrowbyPay": "Marrowby Pay",
    "error": "{V3}"
  }
}
""",
    ),
    _t(
        "storefront/web/src/i18n/messages/ja.json",
        "t21_i18n_ja",
        False,
        r"""
{
  "account": {
    "title": "マイアカウント",
    "email": "メールアドレス",
    "password": "パスワード",
    "passwordHint": "{V}",
    "forgot": "{V2}",
    "submit": "ログイン"
  },
  "seller": {
    "apiKeys": "APIキー",
    "apiKeyRotated": "{V3}"
  }
}
""",
    ),
    _t(
        "storefront/services/cart-api/src/config/default.ts",
        "t21_url_pw",
        True,
        r"""
import { z } from "zod";

const schema = z.object({
  port: z.coerce.number().default(8080),
  redisUrl: z.string().url(),
  pgUrl: z.string().url(),
  pricingUrl: z.string().url(),
});

export const config = schema.parse({
  port: process.env.PORT,
  // fallback so `npm run dev` works against the shared dev box without a .env
  redisUrl: process.env.REDIS_URL ?? "redis://:{V}@dev-box-03.marrowby.internal:6379/2",
  pgUrl: process.env.PG_URL ?? "postgres://cart:{V2}@dev-box-03.marrowby.internal:5432/cart",
  pricingUrl: process.env.PRICING_URL ?? "http://localhost:8091",
});
""",
    ),
    _t(
        "storefront/services/notifications/src/clients/sendgrid.ts",
        "t21_sendgrid",
        True,
        r"""
import sgMail from "@sendgrid/mail";

// TODO(luana): move to secrets manager before go-live in BR
sgMail.setApiKey(process.env.SENDGRID_API_KEY || "{V}");

export type OrderMail = { to: string; orderId: string; locale: "de" | "en" | "pt" | "ja" };

const TEMPLATES: Record<OrderMail["locale"], string | undefined> = {
  de: process.env.SG_TEMPLATE_ORDER_DE,
  en: process.env.SG_TEMPLATE_ORDER_EN,
  pt: process.env.SG_TEMPLATE_ORDER_PT,
  ja: process.env.SG_TEMPLATE_ORDER_JA,
};

export async function sendOrderConfirmation(mail: OrderMail) {
  await sgMail.send({
    to: mail.to,
    from: { email: "bestellung@marrowby.com", name: "Marrowby Market" },
    templateId: TEMPLATES[mail.locale],
    dynamicTemplateData: { orderId: mail.orderId },
  });
}
""",
    ),
    _t(
        "storefront/.npmrc",
        "t21_npm",
        True,
        r"""
@marrowby:registry=https://npm.pkg.marrowby.net/
//npm.pkg.marrowby.net/:_authToken={V}
//registry.npmjs.org/:_authToken={V2}
engine-strict=true
save-exact=true
""",
    ),
    _t(
        "storefront/.npmrc",
        "t21_ci_ref",
        False,
        r"""
@marrowby:registry=https://npm.pkg.marrowby.net/
//npm.pkg.marrowby.net/:_authToken={V}
always-auth=true
engine-strict=true
""",
    ),
    _t(
        "storefront/package-lock.json",
        "t21_sri",
        False,
        r"""
{
  "name": "@marrowby/storefront",
  "version": "7.31.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/stripe": {
      "version": "16.2.0",
      "resolved": "https://registry.npmjs.org/stripe/-/stripe-16.2.0.tgz",
      "integrity": "{V}",
      "dependencies": {
        "@types/node": ">=8.1.0",
        "qs": "^6.11.0"
      }
    },
    "node_modules/next-auth": {
      "version": "4.24.7",
      "resolved": "https://registry.npmjs.org/next-auth/-/next-auth-4.24.7.tgz",
      "integrity": "{V2}"
    },
    "node_modules/zod": {
      "version": "3.23.8",
      "resolved": "https://registry.npmjs.org/zod/-/zod-3.23.8.tgz",
      "integrity": "{V3}"
    }
  }
}
""",
    ),
    _t(
        "storefront/services/search-gateway/src/algolia.ts",
        "t21_algolia_admin",
        True,
        r"""
import algoliasearch from "algoliasearch";

const APP_ID = "MB7Q2XK4LP";
// admin key is needed for the nightly reindex job; search key is in the frontend bundle
const ADMIN_KEY = "{V}";

export const adminClient = algoliasearch(APP_ID, ADMIN_KEY);
export const productsIndex = adminClient.initIndex("prod_products_de");

export async function reindex(batch: Array<Record<string, unknown>>) {
  await productsIndex.saveObjects(batch, { autoGenerateObjectIDIfNotExist: false });
}
""",
    ),
    _t(
        "storefront/services/search-gateway/test/fixtures/orders.json",
        "t21_stripe_obj",
        False,
        r"""
[
  {
    "orderId": "MB-2024-000184",
    "paymentIntent": "{V}",
    "status": "paid",
    "amount": 4599,
    "currency": "EUR"
  },
  {
    "orderId": "MB-2024-000185",
    "paymentIntent": "{V2}",
    "status": "refunded",
    "amount": 1299,
    "currency": "EUR"
  },
  {
    "orderId": "MB-2024-000186",
    "paymentIntent": "{V3}",
    "status": "requires_action",
    "amount": 25900,
    "currency": "BRL"
  }
]
""",
    ),
    _t(
        "storefront/docker-compose.dev.yml",
        "t21_weak_pw",
        True,
        r"""
services:
  postgres:
    image: postgres:16-alpine
    environment:
      POSTGRES_USER: storefront
      POSTGRES_PASSWORD: {V}
      POSTGRES_DB: storefront
    ports:
      - "5432:5432"
  redis:
    image: redis:7-alpine
    command: ["redis-server", "--requirepass", "{V2}"]
    ports:
      - "6379:6379"
  web:
    build: ./web
    depends_on: [postgres, redis]
    environment:
      DATABASE_URL: postgresql://storefront:{V}@postgres:5432/storefront
      REDIS_URL: redis://:{V2}@redis:6379/0
    ports:
      - "3000:3000"
""",
    ),
    # ====================================================================== seller portal (Rails)
    _t(
        "seller-portal/config/database.yml",
        "t21_pw",
        True,
        r"""
default: &default
  adapter: postgresql
  encoding: unicode
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>
  timeout: 5000

development:
  <<: *default
  database: seller_portal_development

test:
  <<: *default
  database: seller_portal_test

production:
  <<: *default
  host: pg-seller-01.prod.marrowby.net
  database: seller_portal
  username: seller_portal
  password: {V}
  sslmode: verify-full
""",
    ),
    _t(
        "seller-portal/config/database.yml",
        "t21_ruby_ref",
        False,
        r"""
default: &default
  adapter: postgresql
  encoding: unicode
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

production:
  <<: *default
  url: <%= ENV["DATABASE_URL"] %>
  password: {V}

reporting:
  <<: *default
  host: pg-seller-replica.prod.marrowby.net
  database: seller_portal
  username: reporting_ro
  password: {V2}
  replica: true
""",
    ),
    _t(
        "seller-portal/config/master.key",
        "t21_hex32",
        True,
        r"""
{V}
""",
    ),
    _t(
        "seller-portal/config/credentials/production.yml.enc",
        "t21_rails_enc",
        False,
        r"""
{V}
""",
    ),
    _t(
        "seller-portal/config/secrets.yml",
        "t21_secret_key_base",
        True,
        r"""
# Old Rails 4 style secrets, still read by the payouts rake tasks. Rotate together with
# credentials.yml.enc (see docs/runbooks/rotate-secret-key-base.md).
development:
  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>

staging:
  secret_key_base: {V}

sandbox:
  secret_key_base: {V2}

production:
  secret_key_base: {V3}
""",
    ),
    _t(
        "seller-portal/config/initializers/payouts.rb",
        "t21_ruby_ref",
        False,
        r"""
# frozen_string_literal: true

Rails.application.configure do
  config.x.payouts.provider = :marrowby_pay
  config.x.payouts.api_base = ENV.fetch("MARROWBY_PAY_API", "https://api.pay.marrowby.net/v2")
  config.x.payouts.api_key = {V}
  config.x.payouts.webhook_secret = {V2}
  config.x.payouts.schedule = "0 6 * * 1-5"
end
""",
    ),
    _t(
        "seller-portal/config/initializers/sidekiq.rb",
        "t21_url_pw",
        True,
        r"""
# frozen_string_literal: true

redis_url = ENV.fetch("SIDEKIQ_REDIS_URL") do
  # the ops box never got the env var, keep this until it is rebuilt
  "redis://:{V}@redis-jobs-01.prod.marrowby.net:6379/4"
end

Sidekiq.configure_server do |config|
  config.redis = { url: redis_url, network_timeout: 5 }
end

Sidekiq.configure_client do |config|
  config.redis = { url: redis_url, network_timeout: 5 }
end

require "sidekiq/web"
Sidekiq::Web.use Rack::Auth::Basic do |user, pass|
  ActiveSupport::SecurityUtils.secure_compare(user, "ops") &
    ActiveSupport::SecurityUtils.secure_compare(pass, ENV.fetch("SIDEKIQ_WEB_PASSWORD"))
end
""",
    ),
    _t(
        "seller-portal/db/seeds.rb",
        "t21_weak_pw",
        True,
        r"""
# frozen_string_literal: true
# Seeds for the staging seller portal (staging.sellers.marrowby.com). Run with `bin/rails db:seed`.

admin = User.find_or_initialize_by(email: "ops-admin@marrowby.com")
admin.update!(
  name: "Ops Admin",
  role: :admin,
  password: "{V}",
  password_confirmation: "{V}",
)

support = User.find_or_initialize_by(email: "suporte@marrowby.com.br")
support.update!(name: "Suporte BR", role: :support, password: "{V2}")

Seller.find_or_create_by!(slug: "demo-shop") do |s|
  s.name = "Demo Shop GmbH"
  s.country = "DE"
end
""",
    ),
    _t(
        "seller-portal/db/seeds.rb",
        "t21_fake",
        False,
        r"""
# frozen_string_literal: true
# Development seeds only (refuses to run anywhere else).
abort("dev only") unless Rails.env.development?

User.find_or_create_by!(email: "dev@example.com") do |u|
  u.name = "Dev User"
  u.role = :admin
  u.password = "{V}"
end

User.find_or_create_by!(email: "seller@example.com") do |u|
  u.name = "Seller Dev"
  u.role = :seller
  u.password = "{V2}"
end
""",
    ),
    _t(
        "seller-portal/spec/fixtures/users.yml",
        "t21_bcrypt",
        False,
        r"""
ops_admin:
  email: ops-admin@marrowby.com
  name: Ops Admin
  role: admin
  encrypted_password: "{V}"
  confirmed_at: <%= 3.days.ago %>

seller_de:
  email: verkauf@demo-shop.de
  name: Demo Shop
  role: seller
  encrypted_password: "{V2}"
  confirmed_at: <%= 1.day.ago %>

seller_br:
  email: vendas@loja-demo.com.br
  name: Loja Demo
  role: seller
  encrypted_password: "{V3}"
""",
    ),
    _t(
        "seller-portal/config/storage.yml",
        "t21_aws_secret",
        True,
        r"""
local:
  service: Disk
  root: <%= Rails.root.join("storage") %>

amazon:
  service: S3
  access_key_id: <%= ENV["SELLER_UPLOADS_KEY_ID"] %>
  # secret_access_key: <%= ENV["SELLER_UPLOADS_SECRET"] %>
  secret_access_key: {V}
  region: eu-central-1
  bucket: marrowby-seller-uploads-prod
""",
    ),
    _t(
        "seller-portal/config/environments/production.rb",
        "t21_pw",
        True,
        r"""
# frozen_string_literal: true

require "active_support/core_ext/integer/time"

Rails.application.configure do
  config.cache_classes = true
  config.eager_load = true
  config.force_ssl = true
  config.log_level = :info
  config.i18n.available_locales = %i[de en pt-BR ja]
  config.i18n.default_locale = :de

  config.action_mailer.delivery_method = :smtp
  config.action_mailer.smtp_settings = {
    address: "smtp.eu.mailgun.org",
    port: 587,
    user_name: "postmaster@mg.sellers.marrowby.com",
    password: "{V}",
    authentication: :plain,
    enable_starttls_auto: true,
  }
end
""",
    ),
    _t(
        "seller-portal/config/locales/pt-BR.yml",
        "t21_i18n_pt",
        False,
        r"""
pt-BR:
  devise:
    sessions:
      signed_in: "Login efetuado com sucesso."
      password_hint: "{V}"
    passwords:
      forgot: "{V2}"
      send_instructions: "Você receberá um e-mail com instruções para redefinir sua senha."
  seller:
    api_keys:
      title: "Chaves de API"
      revoked: "{V3}"
""",
    ),
    _t(
        "seller-portal/app/services/marrowby_pay/client.rb",
        "t21_internal_key",
        True,
        r"""
# frozen_string_literal: true

module MarrowbyPay
  class Client
    BASE_URL = "https://api.pay.marrowby.net/v2"

    # FIXME: hard-coded while the credentials migration is stuck (SELL-2291)
    API_KEY = "{V}"

    def initialize(api_key: ENV.fetch("MARROWBY_PAY_KEY", API_KEY))
      @conn = Faraday.new(BASE_URL) do |f|
        f.request :authorization, "Bearer", api_key
        f.request :json
        f.response :json
        f.response :raise_error
      end
    end

    def create_payout(seller_id:, amount_cents:, currency:)
      @conn.post("payouts", seller_id:, amount: amount_cents, currency:).body
    end
  end
end
""",
    ),
    _t(
        "seller-portal/spec/services/marrowby_pay/client_spec.rb",
        "t21_fake",
        False,
        r"""
# frozen_string_literal: true

require "rails_helper"

RSpec.describe MarrowbyPay::Client do
  subject(:client) { described_class.new(api_key: "{V}") }

  before do
    stub_request(:post, "https://api.pay.marrowby.net/v2/payouts")
      .with(headers: { "Authorization" => "Bearer {V}" })
      .to_return(status: 201, body: { id: "po_1", status: "pending" }.to_json,
                 headers: { "Content-Type" => "application/json" })
  end

  it "creates a payout" do
    expect(client.create_payout(seller_id: 42, amount_cents: 1000, currency: "EUR"))
      .to include("status" => "pending")
  end
end
""",
    ),
    # ====================================================================== Magento / WooCommerce
    _t(
        "magento/app/etc/env.php",
        "t21_pw",
        True,
        r"""
<?php
return [
    'backend' => [
        'frontName' => 'mb_admin_7x'
    ],
    'crypt' => [
        'key' => getenv('MAGENTO_CRYPT_KEY')
    ],
    'db' => [
        'table_prefix' => '',
        'connection' => [
            'default' => [
                'host' => 'mysql-magento-01.prod.marrowby.net',
                'dbname' => 'magento',
                'username' => 'magento',
                'password' => '{V}',
                'model' => 'mysql4',
                'engine' => 'innodb',
                'initStatements' => 'SET NAMES utf8;',
                'active' => '1'
            ]
        ]
    ],
    'cache' => [
        'frontend' => [
            'default' => [
                'backend' => 'Magento\\Framework\\Cache\\Backend\\Redis',
                'backend_options' => [
                    'server' => 'redis-magento.prod.marrowby.net',
                    'port' => '6379',
                    'password' => '{V2}',
                    'database' => '0'
                ]
            ]
        ]
    ],
    'MAGE_MODE' => 'production',
];
""",
    ),
    _t(
        "magento/app/etc/env.php",
        "t21_hex32",
        True,
        r"""
<?php
return [
    'backend' => [
        'frontName' => 'admin_mbstg'
    ],
    'crypt' => [
        'key' => '{V}'
    ],
    'session' => [
        'save' => 'redis',
        'redis' => [
            'host' => 'redis-magento-stg.marrowby.internal',
            'port' => '6379',
            'password' => getenv('MAGENTO_REDIS_PASSWORD'),
            'database' => '2'
        ]
    ],
    'install' => [
        'date' => 'Thu, 04 Mar 2021 09:10:12 +0000'
    ],
    'MAGE_MODE' => 'production',
];
""",
    ),
    _t(
        "magento/app/etc/env.php.dist",
        "t21_php_ref",
        False,
        r"""
<?php
// Template rendered by the deploy pipeline. Values come from the environment.
return [
    'db' => [
        'connection' => [
            'default' => [
                'host' => getenv('MAGENTO_DB_HOST'),
                'dbname' => 'magento',
                'username' => 'magento',
                'password' => {V},
                'active' => '1'
            ]
        ]
    ],
    'crypt' => [
        'key' => {V2}
    ],
];
""",
    ),
    _t(
        "magento/app/code/Marrowby/Pay/etc/config.xml",
        "t21_jasypt",
        False,
        r"""
<?xml version="1.0"?>
<config xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xsi:noNamespaceSchemaLocation="urn:magento:module:Magento_Store:etc/config.xsd">
    <default>
        <payment>
            <marrowby_pay>
                <active>1</active>
                <title>Marrowby Pay</title>
                <model>MarrowbyPayFacade</model>
                <payment_action>authorize</payment_action>
                <environment>production</environment>
                <!-- stored encrypted by Magento's backend model (Magento\Config\Model\Config\Backend\Encrypted) -->
                <api_secret backend_model="Magento\Config\Model\Config\Backend\Encrypted">{V}</api_secret>
                <webhook_secret backend_model="Magento\Config\Model\Config\Backend\Encrypted">{V2}</webhook_secret>
                <currency>EUR</currency>
                <can_refund>1</can_refund>
            </marrowby_pay>
        </payment>
    </default>
</config>
""",
    ),
    _t(
        "magento/dev/tools/setup-staging.sh",
        "t21_weak_pw",
        True,
        r"""
#!/usr/bin/env bash
# Rebuild the Magento staging box (magento-stg-02.marrowby.internal) from the nightly dump.
set -euo pipefail

cd /var/www/magento
bin/magento maintenance:enable
mysql -h mysql-magento-stg.marrowby.internal -u magento -p"$MAGENTO_DB_PASSWORD" magento < /backups/nightly.sql
bin/magento setup:upgrade --keep-generated
bin/magento admin:user:create \
  --admin-user=admin \
  --admin-password='{V}' \
  --admin-email=ops-magento@marrowby.com \
  --admin-firstname=Ops \
  --admin-lastname=Magento
bin/magento cache:flush
bin/magento maintenance:disable
""",
    ),
    _t(
        "magento/dev/tests/integration/etc/install-config-mysql.php",
        "t21_role_word",
        False,
        r"""
<?php
/**
 * Integration test install config. Runs against the throwaway container in CI only.
 */
return [
    'db-host' => 'mysql',
    'db-user' => 'root',
    'db-password' => '{V}',
    'db-name' => 'magento_integration_tests',
    'db-prefix' => '',
    'backend-frontname' => 'backend',
    'admin-user' => \Magento\TestFramework\Bootstrap::ADMIN_NAME,
    'admin-password' => \Magento\TestFramework\Bootstrap::ADMIN_PASSWORD,
    'admin-email' => \Magento\TestFramework\Bootstrap::ADMIN_EMAIL,
    'admin-firstname' => \Magento\TestFramework\Bootstrap::ADMIN_FIRSTNAME,
    'admin-lastname' => \Magento\TestFramework\Bootstrap::ADMIN_LASTNAME,
];
""",
    ),
    _t(
        "magento/var/export/admin_user.csv",
        "t21_magento_hash",
        False,
        r"""
user_id,firstname,lastname,email,username,password,created,is_active
1,Ops,Magento,ops-magento@marrowby.com,admin,{V},2021-03-04 09:12:44,1
7,Jana,Krüger,jana.krueger@marrowby.com,jkrueger,{V2},2022-11-18 14:02:10,1
12,Rafael,Souza,rafael.souza@marrowby.com.br,rsouza,{V3},2023-06-01 08:45:31,0
""",
    ),
    _t(
        "magento/app/code/Marrowby/Courier/Model/Api/Client.php",
        "t21_magento_token",
        True,
        r"""
<?php
declare(strict_types=1);

namespace Marrowby\Courier\Model\Api;

use GuzzleHttp\Client as HttpClient;

class Client
{
    private const BASE_URI = 'https://shop.marrowby.com/rest/V1/';
    // integration "courier-sync" access token (System > Integrations), generated 2023-09
    private const ACCESS_TOKEN = '{V}';

    private HttpClient $http;

    public function __construct()
    {
        $this->http = new HttpClient([
            'base_uri' => self::BASE_URI,
            'headers' => ['Authorization' => 'Bearer ' . self::ACCESS_TOKEN],
            'timeout' => 10,
        ]);
    }

    public function shipments(int $orderId): array
    {
        $res = $this->http->get("orders/{$orderId}/shipments");
        return json_decode((string) $res->getBody(), true);
    }
}
""",
    ),
    _t(
        "woocommerce/marrowby-connector/marrowby-connector.php",
        "t21_woo_secret",
        True,
        r"""
<?php
/**
 * Plugin Name: Marrowby Connector for WooCommerce
 * Description: Syncs WooCommerce catalogues and orders to Marrowby Market.
 * Version: 2.4.1
 * Author: Marrowby Market
 * Text Domain: marrowby-connector
 */

defined('ABSPATH') || exit;

define('MARROWBY_CONNECTOR_VERSION', '2.4.1');
define('MARROWBY_API_BASE', 'https://api.marrowby.com/seller/v1');

// Debug values for the demo shop (loja-demo.marrowby-sandbox.com.br). Remove before tagging.
define('MARROWBY_WC_CONSUMER_KEY', get_option('marrowby_wc_consumer_key'));
define('MARROWBY_WC_CONSUMER_SECRET', '{V}');

require_once __DIR__ . '/includes/class-marrowby-sync.php';
add_action('plugins_loaded', ['Marrowby_Sync', 'init']);
""",
    ),
    _t(
        "woocommerce/marrowby-connector/includes/class-marrowby-settings.php",
        "t21_php_ref",
        False,
        r"""
<?php
defined('ABSPATH') || exit;

class Marrowby_Settings
{
    public static function api_secret(): string
    {
        $secret = {V};
        return is_string($secret) ? $secret : '';
    }

    public static function consumer_secret(): string
    {
        return (string) {V2};
    }

    public static function render_field(): void
    {
        printf(
            '<input type="password" name="marrowby_api_secret" value="" placeholder="%s" autocomplete="new-password" />',
            esc_attr__('Enter your Marrowby API secret', 'marrowby-connector')
        );
    }
}
""",
    ),
    _t(
        "woocommerce/marrowby-connector/languages/marrowby-connector-pt_BR.po",
        "t21_i18n_pt",
        False,
        r"""
msgid ""
msgstr ""
"Project-Id-Version: Marrowby Connector 2.4.1\n"
"Language: pt_BR\n"
"Content-Type: text/plain; charset=UTF-8\n"

#: includes/class-marrowby-settings.php:24
msgid "Enter your Marrowby API secret"
msgstr "Informe o segredo da API Marrowby"

#: includes/class-marrowby-settings.php:41
msgid "Password hint"
msgstr "{V}"

#: includes/class-marrowby-sync.php:88
msgid "Invalid API key"
msgstr "{V2}"
""",
    ),
    _t(
        "woocommerce/demo-site/wp-config.php",
        "t21_wp_salt",
        True,
        r"""
<?php
define( 'DB_NAME', 'wp_lojademo' );
define( 'DB_USER', 'wp_lojademo' );
define( 'DB_PASSWORD', getenv('WP_DB_PASSWORD') );
define( 'DB_HOST', 'mysql-wp-demo.marrowby.internal' );
define( 'DB_CHARSET', 'utf8mb4' );

define( 'AUTH_KEY',         '{V}' );
define( 'SECURE_AUTH_KEY',  '{V2}' );
define( 'LOGGED_IN_KEY',    '{V3}' );
define( 'NONCE_KEY',        '{V4}' );

$table_prefix = 'wp_';
define( 'WP_DEBUG', false );
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
""",
    ),
    _t(
        "woocommerce/demo-site/wp-config.php",
        "t21_weak_pw",
        True,
        r"""
<?php
// Demo WooCommerce shop used by the seller onboarding videos (loja-demo.marrowby-sandbox.com.br)
define( 'DB_NAME', 'wp_lojademo' );
define( 'DB_USER', 'wp_lojademo' );
define( 'DB_PASSWORD', '{V}' );
define( 'DB_HOST', 'mysql-wp-demo.marrowby.internal' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
$table_prefix = 'wp_';
define( 'WP_DEBUG', false );
require_once ABSPATH . 'wp-settings.php';
""",
    ),
    _t(
        "woocommerce/demo-site/db/wp_users.sql",
        "t21_phpass",
        False,
        r"""
-- Dump of wp_users from the demo shop (2024-05-02). Passwords are phpass hashes.
INSERT INTO `wp_users` (`ID`, `user_login`, `user_pass`, `user_nicename`, `user_email`, `user_registered`, `user_status`, `display_name`) VALUES
(1, 'marrowby-admin', '{V}', 'marrowby-admin', 'wp-admin@marrowby.com', '2022-02-11 10:14:02', 0, 'Marrowby Admin'),
(2, 'vendas', '{V2}', 'vendas', 'vendas@loja-demo.com.br', '2022-02-11 10:20:45', 0, 'Vendas'),
(3, 'support-jp', '{V3}', 'support-jp', 'support-jp@marrowby.co.jp', '2023-08-30 02:11:19', 0, 'サポート');
""",
    ),
    # ====================================================================== Marrowby Pay (Go)
    _t(
        "pay/gateway/config/production.yaml",
        "t21_adyen_key",
        True,
        r"""
server:
  listen: ":8443"
  read_timeout: 15s
  write_timeout: 30s

acquirers:
  adyen:
    enabled: true
    environment: live
    live_url_prefix: 1797a841fbb37ca7-MarrowbyPay
    merchant_account: MarrowbyMarketEU
    api_key: "{V}"
    hmac_key_ref: vault:secret/data/pay/adyen#hmac
  adyen_br:
    enabled: true
    environment: live
    merchant_account: MarrowbyMarketBR
    api_key: "{V2}"

routing:
  default: adyen
  by_country:
    BR: adyen_br
""",
    ),
    _t(
        "pay/gateway/config/production.yaml",
        "t21_vault_ref",
        False,
        r"""
server:
  listen: ":8443"

acquirers:
  adyen:
    enabled: true
    environment: live
    merchant_account: MarrowbyMarketEU
    api_key: "{V}"
    hmac_key: "{V2}"
  braintree:
    enabled: false
    merchant_id: marrowbymarket
    private_key: "{V3}"
""",
    ),
    _t(
        "pay/gateway/internal/psp/adyen/notification.go",
        "t21_adyen_hmac",
        True,
        r"""
package adyen

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// hmacKeyFallback is used when ADYEN_HMAC_KEY is not set.
// TODO(pay-core): remove after the notification service migrates to the secret store.
const hmacKeyFallback = "{V}"

// VerifyHMAC checks the additionalData.hmacSignature of a standard notification item.
func VerifyHMAC(item NotificationItem, hexKey string) bool {
	if hexKey == "" {
		hexKey = hmacKeyFallback
	}
	key, err := hex.DecodeString(hexKey)
	if err != nil {
		return false
	}
	payload := strings.Join([]string{
		item.PspReference, item.OriginalReference, item.MerchantAccountCode,
		item.MerchantReference, item.Amount.ValueString(), item.Amount.Currency,
		item.EventCode, item.SuccessString(),
	}, ":")
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	return hmac.Equal([]byte(base64.StdEncoding.EncodeToString(mac.Sum(nil))), []byte(item.AdditionalData.HmacSignature))
}
""",
    ),
    _t(
        "pay/gateway/internal/psp/adyen/notification_test.go",
        "t21_psp_ref",
        False,
        r"""
package adyen

import "testing"

func TestParseNotification(t *testing.T) {
	cases := []struct {
		name   string
		pspRef string
		event  string
	}{
		{"authorisation", "{V}", "AUTHORISATION"},
		{"capture", "{V2}", "CAPTURE"},
		{"refund", "{V3}", "REFUND"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			item := NotificationItem{PspReference: tc.pspRef, EventCode: tc.event}
			if item.PspReference == "" {
				t.Fatal("missing psp reference")
			}
		})
	}
}
""",
    ),
    _t(
        "pay/gateway/internal/config/config.go",
        "t21_go_ref",
        False,
        r"""
package config

import (
	"fmt"
	"os"

	"github.com/spf13/viper"
)

type Config struct {
	AdyenAPIKey   string
	StripeKey     string
	LedgerDSN     string
	WebhookSecret string
}

func Load() (*Config, error) {
	viper.SetConfigName("gateway")
	viper.AddConfigPath("/etc/marrowby-pay")
	if err := viper.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg := &Config{
		AdyenAPIKey:   {V},
		StripeKey:     {V2},
		WebhookSecret: {V3},
	}
	cfg.LedgerDSN = fmt.Sprintf("postgres://ledger:%s@%s/ledger?sslmode=verify-full",
		os.Getenv("LEDGER_DB_PASSWORD"), os.Getenv("LEDGER_DB_HOST"))
	return cfg, nil
}
""",
    ),
    _t(
        "pay/ledger/cmd/migrate/main.go",
        "t21_url_pw",
        True,
        r"""
package main

import (
	"flag"
	"log"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/postgres"
	_ "github.com/golang-migrate/migrate/v4/source/file"
)

func main() {
	// default points at the prod primary so the on-call can run it from the bastion
	dsn := flag.String("dsn", "postgres://ledger_owner:{V}@pg-ledger-primary.mbpay.internal:5432/ledger?sslmode=require", "database DSN")
	dir := flag.String("dir", "file://migrations", "migrations dir")
	flag.Parse()

	m, err := migrate.New(*dir, *dsn)
	if err != nil {
		log.Fatalf("migrate: %v", err)
	}
	if err := m.Up(); err != nil && err != migrate.ErrNoChange {
		log.Fatalf("up: %v", err)
	}
	log.Println("ledger migrations applied")
}
""",
    ),
    _t(
        "pay/ledger/internal/store/store_test.go",
        "t21_doc_pw",
        False,
        r"""
package store

import (
	"context"
	"testing"
)

// The test database is the docker-compose one; the hostname only resolves inside compose.
const testDSN = "postgres://ledger_test:{V}@ledger-db.test:5432/ledger_test?sslmode=disable"

func TestPostEntryBalanced(t *testing.T) {
	s, err := Open(context.Background(), testDSN)
	if err != nil {
		t.Skipf("no test database: %v", err)
	}
	defer s.Close()
	if err := s.Post(context.Background(), Entry{Debit: "1000", Credit: "2000", AmountMinor: 1299, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
}
""",
    ),
    _t(
        "pay/ledger/go.sum",
        "t21_gosum",
        False,
        r"""
github.com/golang-migrate/migrate/v4 v4.17.1 {V}
github.com/golang-migrate/migrate/v4 v4.17.1/go.mod {V2}
github.com/jackc/pgx/v5 v5.6.0 {V3}
github.com/jackc/pgx/v5 v5.6.0/go.mod {V4}
github.com/shopspring/decimal v1.4.0 {V5}
""",
    ),
    _t(
        "pay/payouts/internal/bank/sepa.go",
        "t21_iban_test",
        False,
        r"""
package bank

// Test IBANs from the banks' published test data. Never real accounts.
var testAccounts = map[string]string{
	"DE": "{V}",
	"PT": "{V2}",
	"GB": "{V3}",
}

func TestAccount(country string) (string, bool) {
	iban, ok := testAccounts[country]
	return iban, ok
}
""",
    ),
    _t(
        "pay/payouts/internal/notify/slack.go",
        "t21_slack_webhook",
        True,
        r"""
package notify

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// #pay-payouts-alerts
var webhookURL = "{V}"

type message struct {
	Text string `json:"text"`
}

func PayoutFailed(batchID string, reason string) error {
	body, _ := json.Marshal(message{Text: ":rotating_light: payout batch " + batchID + " failed: " + reason})
	client := &http.Client{Timeout: 5 * time.Second}
	_, err := client.Post(webhookURL, "application/json", bytes.NewReader(body))
	return err
}
""",
    ),
    _t(
        "pay/payouts/internal/notify/slack_test.go",
        "t21_doc_example",
        False,
        r"""
package notify

import "testing"

func TestWebhookURLNotEmpty(t *testing.T) {
	// value from Slack's API docs; the test server below never calls it
	old := webhookURL
	webhookURL = "{V}"
	defer func() { webhookURL = old }()
	if webhookURL == "" {
		t.Fatal("empty")
	}
}
""",
    ),
    _t(
        "pay/fraud/internal/rules/velocity.go",
        "t21_trace_id",
        False,
        r"""
package rules

// Known-bad device fingerprints from incident PAY-INC-117 (card testing from a botnet).
// These are device hashes from the risk SDK, not secrets.
var blockedDevices = map[string]bool{
	"{V}": true,
	"{V2}": true,
	"{V3}": true,
	"{V4}": true,
}

func Blocked(fingerprint string) bool { return blockedDevices[fingerprint] }
""",
    ),
    _t(
        "pay/gateway/deploy/gateway.env",
        "t21_braintree",
        True,
        r"""
# /etc/marrowby-pay/gateway.env on pay-gw-0[1-4] (systemd EnvironmentFile)
GATEWAY_LISTEN=:8443
GATEWAY_LOG_FORMAT=json
BRAINTREE_ENV=production
BRAINTREE_MERCHANT_ID=marrowbymarket
BRAINTREE_ACCESS_TOKEN={V}
PAYPAL_MODE=live
LEDGER_GRPC=ledger.mbpay.internal:9443
OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.mbpay.internal:4317
""",
    ),
    _t(
        "pay/gateway/deploy/gateway.env",
        "t21_paypal_secret",
        True,
        r"""
# /etc/marrowby-pay/gateway.env (pay-gw-br-01)
GATEWAY_LISTEN=:8443
PAYPAL_MODE=live
PAYPAL_CLIENT_ID_FILE=/etc/marrowby-pay/paypal-client-id
PAYPAL_CLIENT_SECRET={V}
PAYPAL_WEBHOOK_ID_FILE=/etc/marrowby-pay/paypal-webhook-id
LEDGER_GRPC=ledger.mbpay.internal:9443
""",
    ),
    _t(
        "pay/gateway/deploy/gateway.env.tmpl",
        "t21_env_ref",
        False,
        r"""
# rendered by consul-template; see deploy/README.md
GATEWAY_LISTEN=:8443
BRAINTREE_ENV=production
BRAINTREE_ACCESS_TOKEN={V}
PAYPAL_CLIENT_SECRET={V2}
ADYEN_API_KEY={V3}
""",
    ),
    # ====================================================================== Marrowby Pay (Java)
    _t(
        "pay/settlement/src/main/resources/application-prod.yml",
        "t21_pw",
        True,
        r"""
spring:
  application:
    name: settlement
  datasource:
    url: jdbc:postgresql://pg-settlement.mbpay.internal:5432/settlement?ssl=true&sslmode=verify-full
    username: settlement_app
    password: {V}
    hikari:
      maximum-pool-size: 20
  rabbitmq:
    host: rabbit-pay.mbpay.internal
    port: 5671
    username: settlement
    password: {V2}
    ssl:
      enabled: true

settlement:
  cutoff: "22:00"
  timezone: Europe/Berlin
  files:
    outbound-dir: /data/settlement/out
""",
    ),
    _t(
        "pay/settlement/src/main/resources/application-prod.yml",
        "t21_java_ref",
        False,
        r"""
spring:
  application:
    name: settlement
  datasource:
    url: jdbc:postgresql://pg-settlement.mbpay.internal:5432/settlement
    username: settlement_app
    password: {V}
  rabbitmq:
    host: rabbit-pay.mbpay.internal
    username: settlement
    password: {V2}

acquirer:
  paypal:
    client-secret: {V3}
""",
    ),
    _t(
        "pay/settlement/src/main/resources/application-local.properties",
        "t21_rabbit_default",
        True,
        r"""
# Local profile - talks to the shared integration broker on the dev VLAN
spring.rabbitmq.host=rabbit-int-01.mbpay.internal
spring.rabbitmq.port=5672
spring.rabbitmq.username=guest
spring.rabbitmq.password={V}
spring.rabbitmq.virtual-host=/settlement
spring.datasource.url=jdbc:postgresql://localhost:5432/settlement
spring.datasource.username=settlement
spring.datasource.password=${LOCAL_DB_PASSWORD:}
logging.level.com.marrowby.pay=DEBUG
""",
    ),
    _t(
        "pay/settlement/src/main/resources/application.properties",
        "t21_jasypt",
        False,
        r"""
spring.application.name=settlement
server.port=8080
management.endpoints.web.exposure.include=health,info,prometheus
# values are decrypted by jasypt-spring-boot at startup (key from JASYPT_ENCRYPTOR_PASSWORD)
spring.datasource.password={V}
acquirer.adyen.api-key={V2}
acquirer.paypal.client-secret={V3}
jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
""",
    ),
    _t(
        "pay/settlement/src/main/java/com/marrowby/pay/settlement/sftp/AcquirerSftpConfig.java",
        "t21_pw",
        True,
        r"""
package com.marrowby.pay.settlement.sftp;

import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.integration.sftp.session.DefaultSftpSessionFactory;

@Configuration
public class AcquirerSftpConfig {

    @Bean
    public DefaultSftpSessionFactory acquirerSftp() {
        DefaultSftpSessionFactory factory = new DefaultSftpSessionFactory(true);
        factory.setHost("sftp.settlements.acquirer-eu.com");
        factory.setPort(22);
        factory.setUser("marrowby_pay");
        // acquirer will not issue an SSH key for the UAT->prod move, password login only
        factory.setPassword("{V}");
        factory.setAllowUnknownKeys(false);
        factory.setKnownHostsResource(new org.springframework.core.io.ClassPathResource("known_hosts"));
        return factory;
    }
}
""",
    ),
    _t(
        "pay/settlement/src/main/java/com/marrowby/pay/settlement/sftp/AcquirerSftpConfig.java",
        "t21_java_ref",
        False,
        r"""
package com.marrowby.pay.settlement.sftp;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.integration.sftp.session.DefaultSftpSessionFactory;

@Configuration
public class AcquirerSftpConfig {

    @Value("{V}")
    private String password;

    @Value("{V2}")
    private String privateKeyPassphrase;

    @Bean
    public DefaultSftpSessionFactory acquirerSftp() {
        DefaultSftpSessionFactory factory = new DefaultSftpSessionFactory(true);
        factory.setHost("sftp.settlements.acquirer-eu.com");
        factory.setUser("marrowby_pay");
        factory.setPassword(password);
        factory.setPrivateKeyPassphrase(privateKeyPassphrase);
        return factory;
    }
}
""",
    ),
    _t(
        "pay/settlement/src/test/java/com/marrowby/pay/settlement/PaypalClientTest.java",
        "t21_fake",
        False,
        r"""
package com.marrowby.pay.settlement;

import static org.assertj.core.api.Assertions.assertThat;

import com.github.tomakehurst.wiremock.junit5.WireMockTest;
import org.junit.jupiter.api.Test;

@WireMockTest(httpPort = 8089)
class PaypalClientTest {

    private static final String CLIENT_ID = "test-client-id";
    private static final String CLIENT_SECRET = "{V}";

    @Test
    void fetchesToken() {
        PaypalClient client = new PaypalClient("http://localhost:8089", CLIENT_ID, CLIENT_SECRET);
        assertThat(client.baseUrl()).isEqualTo("http://localhost:8089");
    }
}
""",
    ),
    _t(
        "pay/settlement/src/main/resources/keystore/README.md",
        "t21_keystore_default",
        True,
        r"""
# Settlement mTLS keystore

`acquirer-mtls.p12` holds the client certificate the acquirer issued for the settlement
upload (CN=settlement.pay.marrowby.net, valid until 2025-11-30).

The keystore password was never changed from the keytool default, so for now:

    keytool -list -v -keystore acquirer-mtls.p12 -storetype PKCS12 -storepass {V}

Rotation is tracked in PAY-3120; when the new cert arrives, import it with a generated password
and put that password in Vault under `secret/pay/settlement/keystore`.
""",
    ),
    _t(
        ".m2/settings.xml",
        "t21_pw",
        True,
        r"""
<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <servers>
    <server>
      <id>marrowby-releases</id>
      <username>ci-pay</username>
      <password>{V}</password>
    </server>
    <server>
      <id>marrowby-snapshots</id>
      <username>ci-pay</username>
      <password>{V}</password>
    </server>
  </servers>
  <mirrors>
    <mirror>
      <id>marrowby-central</id>
      <mirrorOf>central</mirrorOf>
      <url>https://nexus.marrowby.internal/repository/maven-public/</url>
    </mirror>
  </mirrors>
</settings>
""",
    ),
    _t(
        "pay/tokenizer/src/main/resources/signing/token-signer.pem",
        "t21_ec_key",
        True,
        r"""
{V}
""",
    ),
    _t(
        "pay/tokenizer/src/main/resources/signing/token-signer.pub.pem",
        "t21_public_key",
        False,
        r"""
{V}
""",
    ),
    _t(
        "pay/tokenizer/src/test/resources/application-test.yml",
        "t21_ec_key",
        True,
        r"""
# copied from the staging tokenizer so the contract tests can verify real staging tokens
tokenizer:
  issuer: https://tokenizer.staging.pay.marrowby.net
  signing-key: |
    {IV}
  ttl: PT15M
""",
    ),
    # ====================================================================== Marrowby Pay (Rust)
    _t(
        "pay/risk-engine/config/prod.toml",
        "t21_hmac",
        True,
        r"""
[server]
bind = "0.0.0.0:7070"
workers = 8

[scoring]
model_path = "/opt/risk/models/gbdt-2024-09.bin"
decline_threshold = 0.92
review_threshold = 0.71

[signing]
# shared with the gateway; both sides must change together
decision_hmac_key = "{V}"

[redis]
url = "rediss://risk-redis.mbpay.internal:6380"
""",
    ),
    _t(
        "pay/risk-engine/config/prod.toml",
        "t21_sops",
        False,
        r"""
[server]
bind = "0.0.0.0:7070"

[signing]
decision_hmac_key = "{V}"

[redis]
url = "rediss://risk-redis.mbpay.internal:6380"
password = "{V2}"

[sops]
kms = "arn:aws:kms:eu-central-1:000000000000:alias/risk-engine"
version = "3.8.1"
""",
    ),
    _t(
        "pay/risk-engine/src/settings.rs",
        "t21_rust_ref",
        False,
        r"""
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Settings {
    pub bind: String,
    pub decline_threshold: f32,
}

pub struct Secrets {
    pub decision_hmac_key: SecretString,
    pub redis_password: SecretString,
}

impl Secrets {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            decision_hmac_key: SecretString::new({V}.into()),
            redis_password: SecretString::new({V2}.into()),
        })
    }
}
""",
    ),
    _t(
        "pay/risk-engine/src/feeds/chargeback.rs",
        "t21_url_pw",
        True,
        r"""
use reqwest::Client;

const FEED_URL: &str = "https://marrowby:{V}@feeds.chargeback-network.io/v2/alerts";

pub async fn fetch_alerts(client: &Client) -> anyhow::Result<Vec<Alert>> {
    let resp = client.get(FEED_URL).send().await?.error_for_status()?;
    Ok(resp.json::<Vec<Alert>>().await?)
}

#[derive(serde::Deserialize, Debug)]
pub struct Alert {
    pub arn: String,
    pub amount_minor: i64,
    pub currency: String,
}
""",
    ),
    _t(
        "pay/risk-engine/tests/decision_test.rs",
        "t21_fake",
        False,
        r"""
use risk_engine::decision::{sign, verify};

#[test]
fn signature_round_trip() {
    let key = b"{V}";
    let payload = br#"{"order":"MB-1","score":0.12,"decision":"approve"}"#;
    let sig = sign(key, payload);
    assert!(verify(key, payload, &sig));
}

#[test]
fn rejects_tampered_payload() {
    let key = b"{V2}";
    let sig = sign(key, b"approve");
    assert!(!verify(key, b"decline", &sig));
}
""",
    ),
    _t(
        "pay/risk-engine/Cargo.lock",
        "t21_sha256",
        False,
        r"""
# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 3

[[package]]
name = "hmac"
version = "0.12.1"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"
dependencies = [
 "digest",
]

[[package]]
name = "secrecy"
version = "0.8.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V2}"
dependencies = [
 "zeroize",
]

[[package]]
name = "sha2"
version = "0.10.8"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V3}"
""",
    ),
    _t(
        "pay/ledger/migrations/000042_seed_service_accounts.sql",
        "t21_argon2",
        False,
        r"""
-- Service accounts for the ledger admin API. Only argon2id hashes are stored.
INSERT INTO api_clients (name, secret_hash, scopes, created_at) VALUES
  ('payouts', '{V}', '{ledger:post,ledger:read}', now()),
  ('reconciliation', '{V2}', '{ledger:read}', now()),
  ('finance-export', '{V3}', '{ledger:read,export}', now());
""",
    ),
    _t(
        "pay/ledger/scripts/psql-prod.sh",
        "t21_pw",
        True,
        r"""
#!/usr/bin/env bash
# Open a read-only psql on the ledger replica. Needs the bastion tunnel (make tunnel).
set -euo pipefail

export PGHOST=127.0.0.1
export PGPORT=15432
export PGUSER=ledger_ro
export PGPASSWORD='{V}'
export PGDATABASE=ledger
export PGSSLMODE=require

exec psql -v ON_ERROR_STOP=1 "$@"
""",
    ),
    _t(
        "pay/ledger/scripts/psql-prod.sh",
        "t21_env_ref",
        False,
        r"""
#!/usr/bin/env bash
# Open a read-only psql on the ledger replica. Needs the bastion tunnel (make tunnel).
set -euo pipefail

export PGHOST=127.0.0.1
export PGPORT=15432
export PGUSER=ledger_ro
export PGPASSWORD="{V}"
export PGDATABASE=ledger

exec psql -v ON_ERROR_STOP=1 "$@"
""",
    ),
    _t(
        "pay/gateway/internal/psp/stripe/client.go",
        "t21_stripe_whsec",
        True,
        r"""
package stripe

import (
	"net/http"
	"os"

	"github.com/stripe/stripe-go/v79/webhook"
)

func webhookSecret() string {
	if s := os.Getenv("STRIPE_WEBHOOK_SECRET"); s != "" {
		return s
	}
	return "{V}" // endpoint we_1P... (pay.marrowby.net/hooks/stripe)
}

func HandleWebhook(w http.ResponseWriter, r *http.Request, body []byte) {
	event, err := webhook.ConstructEvent(body, r.Header.Get("Stripe-Signature"), webhookSecret())
	if err != nil {
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	_ = event
	w.WriteHeader(http.StatusOK)
}
""",
    ),
    # ====================================================================== search & recommendations
    _t(
        "search/indexer/settings.py",
        "t21_pw",
        True,
        r"""
from __future__ import annotations

import os

OPENSEARCH_HOSTS = os.getenv(
    "OPENSEARCH_HOSTS",
    "https://os-search-01.prod.marrowby.net:9200,https://os-search-02.prod.marrowby.net:9200",
).split(",")
OPENSEARCH_USER = os.getenv("OPENSEARCH_USER", "indexer")
OPENSEARCH_PASSWORD = os.getenv("OPENSEARCH_PASSWORD", "{V}")

REDIS_HOST = "redis-recs.prod.marrowby.net"
REDIS_PORT = 6379
REDIS_PASSWORD = os.environ.get("REDIS_PASSWORD") or "{V2}"

INDEX_ALIAS = "products"
BULK_CHUNK = 500
LOCALES = ("de_DE", "en_GB", "pt_BR", "ja_JP")
""",
    ),
    _t(
        "search/indexer/settings.py",
        "t21_py_ref",
        False,
        r"""
from __future__ import annotations

import os

OPENSEARCH_HOSTS = os.getenv("OPENSEARCH_HOSTS", "https://localhost:9200").split(",")
OPENSEARCH_USER = os.getenv("OPENSEARCH_USER", "indexer")
OPENSEARCH_PASSWORD = {V}

REDIS_HOST = os.getenv("REDIS_HOST", "localhost")
REDIS_PASSWORD = {V2}

INDEX_ALIAS = "products"
BULK_CHUNK = 500
""",
    ),
    _t(
        "search/indexer/opensearch_client.py",
        "t21_admin_default",
        True,
        r"""
from opensearchpy import OpenSearch

# The staging cluster was installed from the demo config and nobody changed the admin user yet
# (SRCH-882). Until then the reindex tool logs in as admin.
client = OpenSearch(
    hosts=[{"host": "os-staging-01.marrowby.internal", "port": 9200}],
    http_auth=("admin", "{V}"),
    use_ssl=True,
    verify_certs=False,
    ssl_show_warn=False,
)


def reindex(source: str, dest: str) -> dict:
    return client.reindex(body={"source": {"index": source}, "dest": {"index": dest}}, wait_for_completion=False)
""",
    ),
    _t(
        "search/indexer/es_cloud.py",
        "t21_es_apikey",
        True,
        r"""
import os

from elasticsearch import Elasticsearch

ES_CLOUD_ID = os.getenv("ES_CLOUD_ID", "")
# api key "recs-writer" created 2024-02-12 in Kibana by ana.ferreira
ES_API_KEY = "{V}"

es = Elasticsearch(cloud_id=ES_CLOUD_ID, api_key=ES_API_KEY, request_timeout=30)


def upsert_product(doc: dict) -> None:
    es.index(index="recs-products", id=doc["sku"], document=doc)
""",
    ),
    _t(
        "search/indexer/es_cloud.py",
        "t21_es_cloud_id",
        False,
        r"""
import os

from elasticsearch import Elasticsearch

# Cloud ID is only the deployment's address (name + base64 host), not a credential.
ES_CLOUD_ID = "{V}"
ES_API_KEY = os.environ["ES_API_KEY"]

es = Elasticsearch(cloud_id=ES_CLOUD_ID, api_key=ES_API_KEY, request_timeout=30)
""",
    ),
    _t(
        "search/recs/notebooks/ctr_model_eval.ipynb",
        "t21_url_pw",
        True,
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# CTR model v7 - offline evaluation\n", "Pulls last week's impressions from the warehouse replica."]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pandas as pd\n",
    "import sqlalchemy as sa\n",
    "engine = sa.create_engine('postgresql+psycopg://analytics:{V}@dwh-replica.prod.marrowby.net:5432/dwh')\n",
    "df = pd.read_sql('select * from recs.impressions where ds >= current_date - 7', engine)\n",
    "df.shape"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 4,
   "metadata": {},
   "outputs": [{"output_type": "execute_result", "data": {"text/plain": ["(1842210, 14)"]}, "metadata": {}, "execution_count": 4}],
   "source": ["df.groupby('variant').ctr.mean()"]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "search/recs/notebooks/llm_query_rewrite.ipynb",
        "t21_openai",
        True,
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["## Query rewriting experiment (JA/PT long-tail queries)"]
  },
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [],
   "source": [
    "from openai import OpenAI\n",
    "client = OpenAI(api_key='{V}')\n",
    "resp = client.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': '子供用 レインコート 黄色'}])\n",
    "print(resp.choices[0].message.content)"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "search/recs/airflow/dags/recs_daily.py",
        "t21_py_ref",
        False,
        r"""
from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.models import Variable
from airflow.operators.python import PythonOperator


def _export(**_):
    from recs.export import run

    run(es_password={V}, redis_password={V2})


with DAG(
    dag_id="recs_daily",
    schedule="15 3 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Berlin"),
    catchup=False,
    tags=["recs"],
) as dag:
    PythonOperator(task_id="export", python_callable=_export)
""",
    ),
    _t(
        "search/recs/airflow/airflow.cfg",
        "t21_hmac",
        True,
        r"""
[core]
executor = CeleryExecutor
load_examples = False
fernet_key = {V}

[webserver]
base_url = https://airflow-recs.marrowby.internal
secret_key = {V2}
expose_config = False

[celery]
worker_concurrency = 8
""",
    ),
    _t(
        "search/recs/airflow/connections.yaml",
        "t21_url_pw",
        True,
        r"""
# airflow connections import connections.yaml
dwh_replica:
  conn_type: postgres
  host: dwh-replica.prod.marrowby.net
  schema: dwh
  login: analytics
  password: {V}
  port: 5432
opensearch_recs:
  conn_type: http
  host: os-search-01.prod.marrowby.net
  login: recs
  password: {V2}
  port: 9200
  extra: '{"use_ssl": true}'
""",
    ),
    _t(
        "search/recs/src/recs/cache.py",
        "t21_url_pw",
        True,
        r"""
from __future__ import annotations

import json

import redis

# sentinel-less fallback used by the batch scorer (the online path uses Sentinel)
POOL = redis.ConnectionPool.from_url(
    "redis://recs:{V}@redis-recs.prod.marrowby.net:6379/3",
    max_connections=32,
    decode_responses=True,
)


def top_n(user_id: str, n: int = 24) -> list[str]:
    r = redis.Redis(connection_pool=POOL)
    raw = r.get(f"recs:u:{user_id}")
    return json.loads(raw)[:n] if raw else []
""",
    ),
    _t(
        "search/recs/tests/test_cache.py",
        "t21_doc_pw",
        False,
        r"""
import fakeredis
import pytest

from recs import cache

# fakeredis never talks to a server; this URL is only parsed
TEST_URL = "redis://recs:{V}@redis.example.com:6379/3"


@pytest.fixture(autouse=True)
def fake_pool(monkeypatch):
    server = fakeredis.FakeServer()
    monkeypatch.setattr(cache, "POOL", fakeredis.FakeRedis(server=server).connection_pool)


def test_top_n_empty():
    assert cache.top_n("u-1") == []
""",
    ),
    _t(
        "search/redis/redis-recs.conf",
        "t21_pw",
        True,
        r"""
# /etc/redis/redis-recs.conf (managed by hand on redis-recs-0[1-3])
bind 0.0.0.0
port 6379
protected-mode yes
maxmemory 24gb
maxmemory-policy allkeys-lru
appendonly no
save ""
requirepass {V}
masterauth {V}
user recs on >{V2} ~recs:* +@read +@write -@dangerous
user default off
""",
    ),
    _t(
        "search/redis/users.acl",
        "t21_sha256",
        False,
        r"""
user default off
user recs on #{V} ~recs:* +@read +@write -@dangerous
user search_ro on #{V2} ~search:* +@read
user ops on #{V3} ~* +@all
""",
    ),
    _t(
        "search/opensearch/internal_users.yml",
        "t21_bcrypt",
        False,
        r"""
---
_meta:
  type: "internalusers"
  config_version: 2

admin:
  hash: "{V}"
  reserved: true
  backend_roles:
    - "admin"
  description: "Cluster admin"

indexer:
  hash: "{V2}"
  reserved: false
  backend_roles:
    - "indexer"

recs:
  hash: "{V3}"
  reserved: false
  backend_roles:
    - "readall"
""",
    ),
    _t(
        "search/opensearch/docker-compose.yml",
        "t21_admin_default",
        True,
        r"""
# Shared search sandbox on search-sbx-01.marrowby.internal (reachable from the office VPN)
services:
  opensearch:
    image: opensearchproject/opensearch:2.11.1
    environment:
      - cluster.name=search-sbx
      - discovery.type=single-node
      - OPENSEARCH_INITIAL_ADMIN_PASSWORD={V}
      - "OPENSEARCH_JAVA_OPTS=-Xms4g -Xmx4g"
    ports:
      - "9200:9200"
  dashboards:
    image: opensearchproject/opensearch-dashboards:2.11.1
    environment:
      OPENSEARCH_HOSTS: '["https://opensearch:9200"]'
      OPENSEARCH_USERNAME: admin
      OPENSEARCH_PASSWORD: {V}
    ports:
      - "5601:5601"
""",
    ),
    _t(
        "search/opensearch/kibana.yml",
        "t21_pw",
        True,
        r"""
server.host: "0.0.0.0"
server.publicBaseUrl: "https://kibana-search.marrowby.internal"
elasticsearch.hosts: ["https://es-legacy-01.prod.marrowby.net:9200"]
elasticsearch.username: "kibana_system"
elasticsearch.password: "{V}"
elasticsearch.ssl.verificationMode: certificate
xpack.encryptedSavedObjects.encryptionKey: "{V2}"
i18n.locale: "de-DE"
""",
    ),
    _t(
        "search/synonyms/README.ja.md",
        "t21_i18n_ja",
        False,
        r"""
# 同義語辞書の更新手順

検索チーム向けのメモです。OpenSearch の `synonyms_ja.txt` を更新する前に、必ずステージングで確認してください。

1. 管理画面にログインします（社内 SSO）。ログイン画面の文言:「{V}」
2. 「辞書」タブから `synonyms_ja` を選択します。
3. 変更後、エラー表示「{V2}」が出た場合は SSO のセッションを更新してください。

パスワードや API キーをこのリポジトリに書かないでください。
""",
    ),
    _t(
        "search/indexer/pyproject.toml",
        "t21_url_pw",
        True,
        r"""
[project]
name = "marrowby-search-indexer"
version = "4.2.0"
requires-python = ">=3.11"
dependencies = ["opensearch-py>=2.4", "redis>=5", "pydantic>=2"]

[[tool.uv.index]]
name = "marrowby"
url = "https://search-ci:{V}@pypi.marrowby.internal/simple/"

[tool.ruff]
line-length = 100
""",
    ),
    # ====================================================================== warehouse & courier (C#)
    _t(
        "wms/Marrowby.Wms.Api/appsettings.Production.json",
        "t21_pw",
        True,
        r"""
{
  "Logging": {
    "LogLevel": { "Default": "Information", "Microsoft.AspNetCore": "Warning" }
  },
  "ConnectionStrings": {
    "Wms": "Server=sql-wms-01.marrowby.internal,1433;Database=Wms;User Id=wms_app;Password={V};Encrypt=True;TrustServerCertificate=False",
    "WmsReporting": "Server=sql-wms-02.marrowby.internal,1433;Database=Wms;User Id=wms_report;Password={V2};ApplicationIntent=ReadOnly"
  },
  "Courier": {
    "BaseUrl": "https://api.dhl-partner.example-courier.de/v1",
    "Account": "MARROWBY-DE-01",
    "TimeoutSeconds": 20
  },
  "AllowedHosts": "*"
}
""",
    ),
    _t(
        "wms/Marrowby.Wms.Api/appsettings.json",
        "t21_placeholder",
        False,
        r"""
{
  "ConnectionStrings": {
    "Wms": "Server=localhost,1433;Database=Wms;User Id=wms_app;Password={V};TrustServerCertificate=True"
  },
  "Courier": {
    "BaseUrl": "https://sandbox.courier.example.com/v1",
    "ApiKey": "{V2}",
    "SftpPassword": "{V3}"
  },
  "AllowedHosts": "*"
}
""",
    ),
    _t(
        "wms/Marrowby.Wms.Api/appsettings.Staging.json",
        "t21_weak_pw",
        True,
        r"""
{
  "ConnectionStrings": {
    "Wms": "Server=sql-wms-stg.marrowby.internal,1433;Database=WmsStaging;User Id=sa;Password={V};TrustServerCertificate=True"
  },
  "Hangfire": {
    "DashboardUser": "lager",
    "DashboardPassword": "{V2}"
  }
}
""",
    ),
    _t(
        "wms/Marrowby.Wms.Courier/Clients/ParcelNordClient.cs",
        "t21_cs_ref",
        False,
        r"""
using System.Net.Http.Headers;
using Microsoft.Extensions.Configuration;

namespace Marrowby.Wms.Courier.Clients;

public sealed class ParcelNordClient
{
    private readonly HttpClient _http;

    public ParcelNordClient(HttpClient http, IConfiguration configuration)
    {
        _http = http;
        var apiKey = {V};
        _http.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        var password = {V2};
        var basic = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"marrowby:{password}"));
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", basic);
    }

    public Task<HttpResponseMessage> CreateLabelAsync(HttpContent body, CancellationToken ct) =>
        _http.PostAsync("labels", body, ct);
}
""",
    ),
    _t(
        "wms/Marrowby.Wms.Courier/Clients/ParcelNordClient.cs",
        "t21_basic",
        True,
        r"""
using System.Net.Http.Headers;

namespace Marrowby.Wms.Courier.Clients;

public sealed class ParcelNordClient
{
    private readonly HttpClient _http;

    public ParcelNordClient(HttpClient http)
    {
        _http = http;
        _http.BaseAddress = new Uri("https://api.parcelnord.eu/v3/");
        // prod account, see confluence WMS/Couriers/ParcelNord
        _http.DefaultRequestHeaders.Authorization =
            new AuthenticationHeaderValue("Basic", "{V}");
    }

    public Task<HttpResponseMessage> TrackAsync(string trackingNumber, CancellationToken ct) =>
        _http.GetAsync($"tracking/{trackingNumber}", ct);
}
""",
    ),
    _t(
        "wms/Marrowby.Wms.Courier.Tests/TrackingParserTests.cs",
        "t21_tracking",
        False,
        r"""
using Xunit;

namespace Marrowby.Wms.Courier.Tests;

public class TrackingParserTests
{
    [Theory]
    [InlineData("{V}")]
    [InlineData("{V2}")]
    [InlineData("{V3}")]
    public void Parses_known_formats(string trackingNumber)
    {
        var parsed = TrackingParser.Parse(trackingNumber);
        Assert.NotNull(parsed.Carrier);
    }
}
""",
    ),
    _t(
        "wms/Marrowby.Wms.Api/Web.config",
        "t21_pw",
        True,
        r"""
<?xml version="1.0" encoding="utf-8"?>
<!-- legacy WCF host for the Lisbon warehouse handhelds, still on .NET Framework 4.8 -->
<configuration>
  <connectionStrings>
    <add name="WmsLegacy"
         connectionString="Data Source=sql-wms-lis.marrowby.internal;Initial Catalog=WmsLis;User ID=wms_lis;Password={V};MultipleActiveResultSets=True"
         providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="Culture" value="pt-PT" />
    <add key="LabelPrinterHost" value="zebra-lis-03.marrowby.internal" />
    <add key="CourierPassword" value="{V2}" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
  </system.web>
</configuration>
""",
    ),
    _t(
        "wms/deploy/Install-WmsAgent.ps1",
        "t21_pw",
        True,
        r"""
<#
.SYNOPSIS
  Installs the WMS sync agent as a Windows service on a warehouse PC.
#>
param(
    [string]$Warehouse = "DE-HAM-01",
    [string]$ServiceUser = "MARROWBY\svc-wms-agent"
)

$ErrorActionPreference = "Stop"
$password = ConvertTo-SecureString '{V}' -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($ServiceUser, $password)

New-Service -Name "MarrowbyWmsAgent" `
    -BinaryPathName "C:\Marrowby\WmsAgent\Marrowby.Wms.Agent.exe --warehouse $Warehouse" `
    -Credential $cred `
    -StartupType Automatic
Start-Service MarrowbyWmsAgent
Write-Host "WMS agent installed for $Warehouse"
""",
    ),
    _t(
        "wms/deploy/Install-WmsAgent.ps1",
        "t21_cs_ref",
        False,
        r"""
param(
    [string]$Warehouse = "DE-HAM-01",
    [string]$ServiceUser = "MARROWBY\svc-wms-agent"
)

$ErrorActionPreference = "Stop"
# password comes from the deployment share's SecretManagement vault
$plain = {V}
$password = ConvertTo-SecureString $plain -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($ServiceUser, $password)
New-Service -Name "MarrowbyWmsAgent" -BinaryPathName "C:\Marrowby\WmsAgent\Marrowby.Wms.Agent.exe" -Credential $cred
""",
    ),
    # ====================================================================== SOAP / XML courier configs
    _t(
        "wms/integrations/courier-pt/ctt-shipping.wsdl.config.xml",
        "t21_pw",
        True,
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- CTT Expresso SOAP client config (Portugal). Ambiente: PRODUÇÃO -->
<courierClient name="ctt-expresso">
  <endpoint>https://ws.ctt-expresso.example-pt.net/ShippingService.svc</endpoint>
  <soapVersion>1.2</soapVersion>
  <security mode="UsernameToken">
    <username>MARROWBY_PT_0421</username>
    <password type="PasswordText">{V}</password>
  </security>
  <contract>
    <clientId>0421</clientId>
    <senderNif>PT515000000</senderNif>
  </contract>
  <timeoutMs>15000</timeoutMs>
</courierClient>
""",
    ),
    _t(
        "wms/integrations/courier-pt/samples/create-shipment-request.xml",
        "t21_wsse_digest",
        False,
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- captured request from the sandbox, kept for the contract test. Digest auth, no clear password. -->
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
               xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
               xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">
  <soap:Header>
    <wsse:Security>
      <wsse:UsernameToken wsu:Id="UsernameToken-1">
        <wsse:Username>MARROWBY_PT_0421</wsse:Username>
        <wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{V}</wsse:Password>
        <wsse:Nonce>{V2}</wsse:Nonce>
        <wsu:Created>2024-03-11T09:14:22.118Z</wsu:Created>
      </wsse:UsernameToken>
    </wsse:Security>
  </soap:Header>
  <soap:Body>
    <CreateShipment xmlns="http://ctt-expresso.example-pt.net/shipping">
      <Reference>MB-2024-118233</Reference>
      <Weight>1.250</Weight>
    </CreateShipment>
  </soap:Body>
</soap:Envelope>
""",
    ),
    _t(
        "wms/integrations/courier-de/soap-request-label.xml",
        "t21_pw",
        True,
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- funktionierender Request aus SoapUI, Versandetikett Produktion (bitte nicht löschen - Jens) -->
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
                  xmlns:cis="http://dhl.de/webservice/cisbase"
                  xmlns:ns="http://dhl.de/webservices/businesscustomershipping/3.0">
  <soapenv:Header>
    <cis:Authentification>
      <cis:user>marrowby_versand</cis:user>
      <cis:signature>{V}</cis:signature>
    </cis:Authentification>
  </soapenv:Header>
  <soapenv:Body>
    <ns:CreateShipmentOrderRequest>
      <ns:Version><majorRelease>3</majorRelease><minorRelease>4</minorRelease></ns:Version>
      <ShipmentOrder>
        <sequenceNumber>1</sequenceNumber>
        <Shipment>
          <ShipmentDetails>
            <product>V01PAK</product>
            <cis:accountNumber>22222222220101</cis:accountNumber>
            <customerReference>MB-2024-220917</customerReference>
          </ShipmentDetails>
        </Shipment>
      </ShipmentOrder>
    </ns:CreateShipmentOrderRequest>
  </soapenv:Body>
</soapenv:Envelope>
""",
    ),
    _t(
        "wms/integrations/courier-jp/yamato-config.xml",
        "t21_hex32",
        True,
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- ヤマト運輸 B2 連携設定（本番）-->
<carrier id="yamato-b2">
  <endpoint>https://api.b2.courier-jp.example.net/v2</endpoint>
  <customerCode>0120-MB-4471</customerCode>
  <apiKey>{V}</apiKey>
  <label>
    <printer>zebra-kix-02.marrowby.internal</printer>
    <format>A5</format>
  </label>
</carrier>
""",
    ),
    _t(
        "wms/integrations/courier-jp/yamato-config.xml",
        "t21_placeholder",
        False,
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- ヤマト運輸 B2 連携設定（テンプレート）。キーは Vault から注入されます。 -->
<carrier id="yamato-b2">
  <endpoint>https://api.b2.courier-jp.example.net/v2</endpoint>
  <customerCode>0120-MB-4471</customerCode>
  <apiKey>{V}</apiKey>
  <password>{V2}</password>
</carrier>
""",
    ),
    # ====================================================================== SFTP / EDI
    _t(
        "edi/scripts/pull_asn.sh",
        "t21_pw",
        True,
        r"""
#!/usr/bin/env bash
# Pull advance shipping notices (DESADV) from the 3PL's SFTP every 15 minutes (cron on edi-gw01)
set -euo pipefail

INBOX=/data/edi/inbound/desadv
mkdir -p "$INBOX"

sshpass -p '{V}' sftp -oBatchMode=no -oStrictHostKeyChecking=yes \
  -b - mb_edi@sftp.3pl-logistik.de <<'EOF'
cd /outbound/DESADV
lcd /data/edi/inbound/desadv
mget *.edi
rm *.edi
EOF

find "$INBOX" -name '*.edi' -newer /var/run/edi/last_pull -print | xargs -r -n1 /opt/edi/bin/ingest
touch /var/run/edi/last_pull
""",
    ),
    _t(
        "edi/scripts/pull_asn.sh",
        "t21_env_ref",
        False,
        r"""
#!/usr/bin/env bash
set -euo pipefail
INBOX=/data/edi/inbound/desadv

SSHPASS="{V}" sshpass -e sftp -oBatchMode=no -b - mb_edi@sftp.3pl-logistik.de <<'EOF'
cd /outbound/DESADV
mget *.edi
EOF
""",
    ),
    _t(
        "edi/scripts/push_orders.py",
        "t21_pw",
        True,
        r"""
#!/usr/bin/env python3
# Push ORDERS EDIFACT files to the Brazilian fulfilment partner (Armazém Sul)
import glob
import os

import paramiko

HOST = "sftp.armazemsul.com.br"
USER = "marrowby"
PASSWORD = "{V}"  # senha enviada pelo parceiro por e-mail em 2023-10


def main() -> None:
    transport = paramiko.Transport((HOST, 22))
    transport.connect(username=USER, password=PASSWORD)
    sftp = paramiko.SFTPClient.from_transport(transport)
    for path in sorted(glob.glob("/data/edi/outbound/orders/*.edi")):
        sftp.put(path, f"/entrada/{os.path.basename(path)}")
        os.rename(path, path + ".sent")
    sftp.close()
    transport.close()


if __name__ == "__main__":
    main()
""",
    ),
    _t(
        "edi/config/partners.yaml",
        "t21_vault_ref",
        False,
        r"""
partners:
  - id: 3pl-logistik
    protocol: sftp
    host: sftp.3pl-logistik.de
    user: mb_edi
    password_ref: "{V}"
    messages: [DESADV, RECADV, INVRPT]
  - id: armazem-sul
    protocol: sftp
    host: sftp.armazemsul.com.br
    user: marrowby
    password_ref: "{V2}"
    messages: [ORDERS, DESADV]
  - id: kix-fulfil
    protocol: as2
    url: https://as2.kix-fulfil.example.jp/as2
    cert_ref: "{V3}"
""",
    ),
    _t(
        "edi/keys/edi-gw01_id_ed25519",
        "t21_openssh_key",
        True,
        r"""
{V}
""",
    ),
    _t(
        "edi/keys/edi-gw01_id_ed25519.pub",
        "t21_ssh_pub",
        False,
        r"""
{V}
""",
    ),
    _t(
        "edi/keys/known_hosts",
        "t21_ssh_pub",
        False,
        r"""
sftp.3pl-logistik.de {V}
sftp.armazemsul.com.br {V2}
""",
    ),
    _t(
        "edi/.netrc",
        "t21_pw",
        True,
        r"""
machine ftp.edi-clearing.de
  login MBMARKET01
  password {V}

machine ftps.courier-pt.example-pt.net
  login marrowby_pt
  password {V2}
""",
    ),
    _t(
        "edi/samples/ORDERS_20240311.edi",
        "t21_ean",
        False,
        r"""
UNA:+.? '
UNB+UNOC:3+4012345000009:14+7890000000001:14+240311:0915+MB00018822'
UNH+1+ORDERS:D:96A:UN:EAN008'
BGM+220+MB-2024-118233+9'
DTM+137:20240311:102'
NAD+BY+4012345000009::9'
NAD+SU+7890000000001::9'
LIN+1++{V}:EN'
QTY+21:12'
LIN+2++{V2}:EN'
QTY+21:4'
LIN+3++{V3}:EN'
QTY+21:30'
UNS+S'
CNT+2:3'
UNT+14+1'
UNZ+1+MB00018822'
""",
    ),
    _t(
        "edi/config/winscp-3pl.ini",
        "t21_pw",
        True,
        r"""
; exported from WinSCP on the Hamburg warehouse PC, used by the nightly batch
[Sessions\mb_edi@sftp.3pl-logistik.de]
HostName=sftp.3pl-logistik.de
UserName=mb_edi
PortNumber=22
FSProtocol=2
; PasswordPlain is read by our wrapper script, WinSCP itself ignores it
PasswordPlain={V}
RemoteDirectory=/outbound/DESADV
LocalDirectory=D:\EDI\inbound
""",
    ),
    # ====================================================================== mobile (Flutter / Kotlin / Swift)
    _t(
        "mobile/app/android/key.properties",
        "t21_pw",
        True,
        r"""
storePassword={V}
keyPassword={V2}
keyAlias=marrowby-upload
storeFile=/Users/ci/keystores/marrowby-upload.jks
""",
    ),
    _t(
        "mobile/app/android/key.properties.example",
        "t21_placeholder",
        False,
        r"""
# Copy to key.properties (git-ignored). The upload keystore lives in the Mobile vault in 1Password.
storePassword={V}
keyPassword={V2}
keyAlias=marrowby-upload
storeFile=<path to marrowby-upload.jks>
""",
    ),
    _t(
        "mobile/app/android/app/build.gradle.kts",
        "t21_mobile_ref",
        False,
        r"""
plugins {
    id("com.android.application")
    id("kotlin-android")
    id("dev.flutter.flutter-gradle-plugin")
}

android {
    namespace = "com.marrowby.market"
    compileSdk = 34

    defaultConfig {
        applicationId = "com.marrowby.market"
        minSdk = 24
        targetSdk = 34
        buildConfigField("String", "MARROWBY_API_KEY", "\"" + {V} + "\"")
    }

    signingConfigs {
        create("release") {
            storePassword = {V2}
            keyPassword = System.getenv("ANDROID_KEY_PASSWORD")
            keyAlias = "marrowby-upload"
            storeFile = file(System.getenv("ANDROID_KEYSTORE_PATH") ?: "upload.jks")
        }
    }
}
""",
    ),
    _t(
        "mobile/seller-app/android/gradle.properties",
        "t21_pw",
        True,
        r"""
org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
android.useAndroidX=true
kotlin.code.style=official
# release signing (seller app) - moved here from the CI box when Bitrise was cancelled
MARROWBY_SELLER_STORE_PASSWORD={V}
MARROWBY_SELLER_KEY_PASSWORD={V2}
MARROWBY_SELLER_KEY_ALIAS=seller-release
# Nexus for internal AARs
marrowbyNexusUser=android-ci
marrowbyNexusPassword={V3}
""",
    ),
    _t(
        "mobile/seller-app/android/app/src/main/java/com/marrowby/seller/net/ApiModule.kt",
        "t21_internal_key",
        True,
        r"""
package com.marrowby.seller.net

import okhttp3.Interceptor
import okhttp3.OkHttpClient
import retrofit2.Retrofit
import retrofit2.converter.moshi.MoshiConverterFactory

object ApiModule {
    // server-to-server key; should not be in the app (MOB-1877) but the v3 release shipped it
    private const val SELLER_API_KEY = "{V}"

    private val auth = Interceptor { chain ->
        chain.proceed(chain.request().newBuilder().header("X-Marrowby-Key", SELLER_API_KEY).build())
    }

    val retrofit: Retrofit = Retrofit.Builder()
        .baseUrl("https://api.marrowby.com/seller/v1/")
        .client(OkHttpClient.Builder().addInterceptor(auth).build())
        .addConverterFactory(MoshiConverterFactory.create())
        .build()
}
""",
    ),
    _t(
        "mobile/seller-app/android/app/src/main/res/values-pt-rBR/strings.xml",
        "t21_i18n_pt",
        False,
        r"""
<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">Marrowby Vendedor</string>
    <string name="login_password">Senha</string>
    <string name="login_password_hint">{V}</string>
    <string name="login_forgot">{V2}</string>
    <string name="error_api_key">{V3}</string>
</resources>
""",
    ),
    _t(
        "mobile/app/lib/config/env.dart",
        "t21_mobile_ref",
        False,
        r"""
/// Build-time configuration, passed with --dart-define or --dart-define-from-file.
class Env {
  static const apiBase = String.fromEnvironment(
    'MARROWBY_API_BASE',
    defaultValue: 'https://api.marrowby.com',
  );
  static const apiKey = {V};
  static const paySdkKey = {V2};
  static const sentryDsn = String.fromEnvironment('SENTRY_DSN');
}
""",
    ),
    _t(
        "mobile/app/lib/config/env.dart",
        "t21_hmac",
        True,
        r"""
/// Build-time configuration.
class Env {
  static const apiBase = String.fromEnvironment(
    'MARROWBY_API_BASE',
    defaultValue: 'https://api.marrowby.com',
  );
  // request-signing secret for the legacy /v1 cart endpoints
  static const requestSigningSecret = String.fromEnvironment(
    'REQUEST_SIGNING_SECRET',
    defaultValue: '{V}',
  );
}
""",
    ),
    _t(
        "mobile/app/dart_defines/prod.json",
        "t21_google_api",
        True,
        r"""
{
  "MARROWBY_API_BASE": "https://api.marrowby.com",
  "MAPS_SERVER_KEY": "{V}",
  "FEATURE_NEW_CHECKOUT": "true",
  "LOG_LEVEL": "warning"
}
""",
    ),
    _t(
        "mobile/app/android/app/google-services.json",
        "t21_firebase_app_id",
        False,
        r"""
{
  "project_info": {
    "project_number": "418227730912",
    "project_id": "marrowby-market-prod",
    "storage_bucket": "marrowby-market-prod.appspot.com"
  },
  "client": [
    {
      "client_info": {
        "mobilesdk_app_id": "{V}",
        "android_client_info": { "package_name": "com.marrowby.market" }
      }
    },
    {
      "client_info": {
        "mobilesdk_app_id": "{V2}",
        "android_client_info": { "package_name": "com.marrowby.seller" }
      }
    }
  ],
  "configuration_version": "1"
}
""",
    ),
    _t(
        "mobile/push/fcm_legacy_sender.py",
        "t21_fcm_server",
        True,
        r"""
# Legacy FCM sender used by the price-drop notifier until the HTTP v1 migration (MOB-2210)
import requests

FCM_URL = "https://fcm.googleapis.com/fcm/send"
SERVER_KEY = "{V}"


def push(token: str, title: str, body: str) -> int:
    resp = requests.post(
        FCM_URL,
        headers={"Authorization": f"key={SERVER_KEY}", "Content-Type": "application/json"},
        json={"to": token, "notification": {"title": title, "body": body}},
        timeout=10,
    )
    return resp.status_code
""",
    ),
    _t(
        "mobile/ios/fastlane/AuthKey_7QW2M4XK9R.p8",
        "t21_p8_key",
        True,
        r"""
{V}
""",
    ),
    _t(
        "mobile/ios/fastlane/Appfile",
        "t21_uuid",
        False,
        r"""
app_identifier("com.marrowby.market")
apple_id("mobile-release@marrowby.com")
itc_team_id("118822731")
team_id("7QW2M4XK9R")

for_lane :seller do
  app_identifier("com.marrowby.seller")
end

# App Store Connect API key id / issuer id (not secret; the .p8 is)
ENV["ASC_KEY_ID"] = "7QW2M4XK9R"
ENV["ASC_ISSUER_ID"] = "{V}"
""",
    ),
    _t(
        "mobile/ios/fastlane/Fastfile",
        "t21_pw",
        True,
        r"""
default_platform(:ios)

platform :ios do
  before_all do
    ENV["MATCH_PASSWORD"] = "{V}"
    ENV["FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD"] = "{V2}"
  end

  lane :beta do
    match(type: "appstore", readonly: true, git_url: "git@gitlab.marrowby.internal:mobile/certificates.git")
    build_app(scheme: "Marrowby", export_method: "app-store")
    upload_to_testflight(skip_waiting_for_build_processing: true)
  end
end
""",
    ),
    _t(
        "mobile/ios/fastlane/Fastfile",
        "t21_ci_ref",
        False,
        r"""
default_platform(:ios)

platform :ios do
  lane :beta do
    ENV["MATCH_PASSWORD"] = "{V}"
    match(type: "appstore", readonly: true)
    build_app(scheme: "Marrowby")
    upload_to_testflight(api_key_path: "fastlane/asc_api_key.json")
  end
end
""",
    ),
    _t(
        "mobile/ios/Marrowby/Config/Release.xcconfig",
        "t21_mobile_ref",
        False,
        r"""
// Release configuration. Secrets are injected by CI into Secrets.xcconfig (git-ignored).
#include? "Secrets.xcconfig"

PRODUCT_BUNDLE_IDENTIFIER = com.marrowby.market
MARROWBY_API_BASE = https:/$()/api.marrowby.com
MARROWBY_API_KEY = {V}
PAY_SDK_KEY = {V2}
SWIFT_ACTIVE_COMPILATION_CONDITIONS = RELEASE
""",
    ),
    _t(
        "mobile/ios/Marrowby/Config/Secrets.xcconfig",
        "t21_internal_key",
        True,
        r"""
// Secrets.xcconfig - generated by ci/write-secrets.sh; this copy was committed by mistake
MARROWBY_API_KEY = {V}
PAY_SDK_KEY = {V2}
""",
    ),
    _t(
        "mobile/ios/Marrowby/Sources/Payments/PayClient.swift",
        "t21_stripe_pk",
        False,
        r"""
import Foundation
import StripePaymentSheet

enum PayConfig {
    // Publishable key: meant to be embedded in the app.
    static let publishableKey = "{V}"
    static let merchantId = "merchant.com.marrowby.market"
}

final class PayClient {
    init() {
        StripeAPI.defaultPublishableKey = PayConfig.publishableKey
    }

    func paymentSheet(clientSecret: String) -> PaymentSheet {
        var config = PaymentSheet.Configuration()
        config.merchantDisplayName = "Marrowby Market"
        config.applePay = .init(merchantId: PayConfig.merchantId, merchantCountryCode: "DE")
        return PaymentSheet(paymentIntentClientSecret: clientSecret, configuration: config)
    }
}
""",
    ),
    _t(
        "mobile/ios/MarrowbyTests/LoginViewModelTests.swift",
        "t21_fake",
        False,
        r"""
import XCTest
@testable import Marrowby

final class LoginViewModelTests: XCTestCase {
    func testRejectsShortPassword() {
        let vm = LoginViewModel(api: MockAPI())
        vm.email = "kunde@example.com"
        vm.password = "{V}"
        XCTAssertFalse(vm.canSubmit == false && vm.password.isEmpty)
    }

    func testMockTokenIsUsed() {
        let api = MockAPI(token: "{V2}")
        XCTAssertEqual(api.token.isEmpty, false)
    }
}
""",
    ),
    _t(
        "mobile/ios/Marrowby/Resources/ja.lproj/Localizable.strings",
        "t21_i18n_ja",
        False,
        r"""
/* ログイン画面 */
"login.title" = "ログイン";
"login.password" = "パスワード";
"login.password.hint" = "{V}";
"login.forgot" = "{V2}";
"seller.apikey.error" = "{V3}";
""",
    ),
    _t(
        "mobile/ci/write-secrets.sh",
        "t21_env_ref",
        False,
        r"""
#!/usr/bin/env bash
# Writes Secrets.xcconfig and key.properties on the CI runner. Values come from CI variables.
set -euo pipefail

cat > ios/Marrowby/Config/Secrets.xcconfig <<EOF
MARROWBY_API_KEY = {V}
PAY_SDK_KEY = {V2}
EOF

cat > app/android/key.properties <<EOF
storePassword={V3}
keyPassword=${ANDROID_KEY_PASSWORD}
keyAlias=marrowby-upload
storeFile=${ANDROID_KEYSTORE_PATH}
EOF
""",
    ),
    # ====================================================================== Terraform
    _t(
        "infra/terraform/envs/prod/terraform.tfvars",
        "t21_pw",
        True,
        r"""
environment     = "prod"
region          = "eu-central-1"
vpc_cidr        = "10.40.0.0/16"
ledger_db_class = "db.r6g.2xlarge"

ledger_db_username = "ledger_owner"
ledger_db_password = "{V}"

opensearch_master_user     = "os-master"
opensearch_master_password = "{V2}"

tags = {
  team        = "platform"
  cost_center = "pay-infra"
}
""",
    ),
    _t(
        "infra/terraform/modules/ledger-db/main.tf",
        "t21_tf_ref",
        False,
        r"""
resource "random_password" "ledger" {
  length  = 32
  special = true
}

resource "aws_db_instance" "ledger" {
  identifier              = "ledger-${var.environment}"
  engine                  = "postgres"
  engine_version          = "16.3"
  instance_class          = var.ledger_db_class
  allocated_storage       = 500
  username                = "ledger_owner"
  password                = {V}
  storage_encrypted       = true
  deletion_protection     = true
  backup_retention_period = 14
}

resource "aws_elasticache_replication_group" "sessions" {
  replication_group_id       = "sessions-${var.environment}"
  description                = "storefront sessions"
  engine                     = "redis"
  node_type                  = "cache.r7g.large"
  transit_encryption_enabled = true
  auth_token                 = {V2}
}
""",
    ),
    _t(
        "infra/terraform/modules/ledger-db/variables.tf",
        "t21_weak_pw",
        True,
        r"""
variable "environment" {
  type = string
}

variable "ledger_db_class" {
  type    = string
  default = "db.t4g.medium"
}

variable "ledger_db_password" {
  type      = string
  sensitive = true
  # default kept for the first bootstrap of the sandbox account, rotate after apply
  default   = "{V}"
}
""",
    ),
    _t(
        "infra/terraform/providers.tf",
        "t21_aws_pair",
        True,
        r"""
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.50"
    }
  }
}

# temporary static credentials for the Sao Paulo account until SSO is wired up
# (remove before merging!)
provider "aws" {
  alias  = "br"
  region = "sa-east-1"
  # shared_credentials_files = ["~/.aws/credentials"]
}

/*
[marrowby-br]
{V}
*/
""",
    ),
    _t(
        "infra/terraform/backend.tf",
        "t21_account_id",
        False,
        r"""
terraform {
  backend "s3" {
    bucket         = "marrowby-tfstate-{V}"
    key            = "platform/prod/terraform.tfstate"
    region         = "eu-central-1"
    dynamodb_table = "marrowby-tf-locks"
    encrypt        = true
    role_arn       = "arn:aws:iam::{V2}:role/terraform-state"
  }
}
""",
    ),
    _t(
        "infra/terraform/.terraformrc",
        "t21_tfc_token",
        True,
        r"""
plugin_cache_dir = "$HOME/.terraform.d/plugin-cache"

credentials "app.terraform.io" {
  token = "{V}"
}
""",
    ),
    _t(
        "infra/terraform/.terraform.lock.hcl",
        "t21_gosum",
        False,
        r"""
# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.54.1"
  constraints = "~> 5.50"
  hashes = [
    "{V}",
    "{V2}",
    "{V3}",
  ]
}
""",
    ),
    _t(
        "infra/terraform/modules/wms-azure/main.tf",
        "t21_azure_storage_key",
        True,
        r"""
# WMS label archive lives in Azure (the Lisbon 3PL's requirement)
provider "azurerm" {
  features {}
}

resource "azurerm_storage_container" "labels" {
  name                  = "labels"
  storage_account_name  = "mbwmslabels"
  container_access_type = "private"
}

locals {
  # used by the null_resource below to seed the container; TODO: use a managed identity
  labels_connection_string = "DefaultEndpointsProtocol=https;AccountName=mbwmslabels;AccountKey={V};EndpointSuffix=core.windows.net"
}
""",
    ),
    _t(
        "infra/terraform/envs/prod/secrets.auto.tfvars.json",
        "t21_sops",
        False,
        r"""
{
  "ledger_db_password": "{V}",
  "opensearch_master_password": "{V2}",
  "sops": {
    "kms": [
      {
        "arn": "arn:aws:kms:eu-central-1:000000000000:key/mrk-platform-prod",
        "created_at": "2024-04-02T08:11:52Z",
        "enc": "AQICAHh-sops-data-key-see-kms",
        "aws_profile": ""
      }
    ],
    "lastmodified": "2024-04-02T08:11:53Z",
    "version": "3.8.1"
  }
}
""",
    ),
    # ====================================================================== Kubernetes
    _t(
        "infra/k8s/pay/ledger-secret.yaml",
        "t21_pw",
        True,
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: ledger-db
  namespace: pay
  labels:
    app.kubernetes.io/name: ledger
type: Opaque
stringData:
  username: ledger_app
  password: "{V}"
  replica-password: "{V2}"
""",
    ),
    _t(
        "infra/k8s/pay/psp-secret.yaml",
        "t21_b64_pw",
        True,
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: gateway-psp
  namespace: pay
type: Opaque
data:
  # base64 - `kubectl get secret gateway-psp -o yaml` from pay-prod, 2024-05-14
  adyen-ws-password: {V}
  paypal-client-secret: {V2}
""",
    ),
    _t(
        "infra/k8s/pay/psp-sealedsecret.yaml",
        "t21_sealed",
        False,
        r"""
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: gateway-psp
  namespace: pay
spec:
  encryptedData:
    adyen-api-key: {V}
    paypal-client-secret: {V2}
  template:
    metadata:
      name: gateway-psp
      namespace: pay
    type: Opaque
""",
    ),
    _t(
        "infra/k8s/storefront/externalsecret.yaml",
        "t21_vault_ref",
        False,
        r"""
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: storefront-env
  namespace: storefront
spec:
  refreshInterval: 1h
  secretStoreRef:
    name: vault-backend
    kind: ClusterSecretStore
  target:
    name: storefront-env
  data:
    - secretKey: NEXTAUTH_SECRET
      remoteRef:
        key: "{V}"
    - secretKey: STRIPE_SECRET_KEY
      remoteRef:
        key: "{V2}"
""",
    ),
    _t(
        "infra/k8s/storefront/deployment.yaml",
        "t21_image_digest",
        False,
        r"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: storefront-web
  namespace: storefront
spec:
  replicas: 6
  selector:
    matchLabels:
      app: storefront-web
  template:
    metadata:
      labels:
        app: storefront-web
    spec:
      containers:
        - name: web
          image: registry.marrowby.internal/storefront/web@{V}
          envFrom:
            - secretRef:
                name: storefront-env
          ports:
            - containerPort: 3000
        - name: otel-agent
          image: registry.marrowby.internal/platform/otel-agent@{V2}
""",
    ),
    _t(
        "infra/k8s/search/opensearch-admin-secret.yaml",
        "t21_admin_default",
        True,
        r"""
# applied by hand when the search cluster was moved to k8s (SRCH-901)
apiVersion: v1
kind: Secret
metadata:
  name: opensearch-admin
  namespace: search
type: Opaque
stringData:
  username: admin
  password: {V}
""",
    ),
    _t(
        "infra/k8s/wms/rabbitmq.yaml",
        "t21_rabbit_default",
        True,
        r"""
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: rabbitmq
  namespace: wms
spec:
  serviceName: rabbitmq
  replicas: 1
  selector:
    matchLabels:
      app: rabbitmq
  template:
    metadata:
      labels:
        app: rabbitmq
    spec:
      containers:
        - name: rabbitmq
          image: rabbitmq:3.12-management
          env:
            - name: RABBITMQ_DEFAULT_USER
              value: guest
            - name: RABBITMQ_DEFAULT_PASS
              value: {V}
          ports:
            - containerPort: 5672
            - containerPort: 15672
""",
    ),
    _t(
        "infra/k8s/ingress/tls-pay-marrowby.yaml",
        "t21_rsa_key",
        True,
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: tls-pay-marrowby
  namespace: pay
type: kubernetes.io/tls
stringData:
  # tls.crt: copied from tls-pay-marrowby.crt in the same folder by the apply script
  tls.key: |
    {IV}
""",
    ),
    _t(
        "infra/k8s/ingress/tls-pay-marrowby.crt",
        "t21_cert",
        False,
        r"""
{V}
""",
    ),
    _t(
        "infra/k8s/ingress/ca-bundle.yaml",
        "t21_cert",
        False,
        r"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: marrowby-internal-ca
  namespace: kube-system
data:
  ca.crt: |
    {IV}
""",
    ),
    _t(
        "infra/k8s/minio/values-override.yaml",
        "t21_minio_default",
        True,
        r"""
# MinIO for the recs feature store snapshots (minio.recs.marrowby.internal)
mode: standalone
rootUser: minioadmin
rootPassword: {V}
persistence:
  size: 2Ti
  storageClass: gp3
ingress:
  enabled: true
  hosts: [minio.recs.marrowby.internal]
""",
    ),
    # ====================================================================== Helm values
    _t(
        "infra/helm/storefront/values-prod.yaml",
        "t21_hmac",
        True,
        r"""
replicaCount: 6
image:
  repository: registry.marrowby.internal/storefront/web
  tag: "7.31.0"

env:
  NODE_ENV: production
  NEXT_PUBLIC_SITE_URL: https://www.marrowby.com

secrets:
  nextauthSecret: "{V}"
  sessionCookieSecret: "{V2}"

resources:
  requests: { cpu: 500m, memory: 768Mi }
  limits: { memory: 1536Mi }
""",
    ),
    _t(
        "infra/helm/storefront/templates/secret.yaml",
        "t21_helm_ref",
        False,
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "storefront.fullname" . }}
type: Opaque
stringData:
  NEXTAUTH_SECRET: {V}
  REDIS_PASSWORD: {V2}
  DATABASE_PASSWORD: {V3}
""",
    ),
    _t(
        "infra/helm/recs/values-staging.yaml",
        "t21_pw",
        True,
        r"""
global:
  environment: staging

redis:
  architecture: replication
  auth:
    enabled: true
    password: "{V}"

postgresql:
  auth:
    username: recs
    password: "{V2}"
    database: recs

scorer:
  replicas: 2
  modelUri: s3://marrowby-recs-models/ctr/v7/
""",
    ),
    _t(
        "infra/helm/search/values-prod.yaml",
        "t21_sops",
        False,
        r"""
opensearch:
  clusterName: search-prod
  replicas: 3
  securityConfig:
    adminPassword: {V}
    indexerPassword: {V2}
sops:
  kms:
    - arn: arn:aws:kms:eu-central-1:000000000000:alias/search-helm
  lastmodified: "2024-06-18T12:02:41Z"
  version: 3.8.1
""",
    ),
    _t(
        "infra/helm/datadog/values.yaml",
        "t21_datadog",
        True,
        r"""
datadog:
  apiKey: {V}
  site: datadoghq.eu
  clusterName: marrowby-prod-euc1
  logs:
    enabled: true
    containerCollectAll: true
  apm:
    portEnabled: true
clusterAgent:
  enabled: true
""",
    ),
    _t(
        "infra/helm/datadog/values.yaml",
        "t21_placeholder",
        False,
        r"""
datadog:
  # apiKeyExistingSecret is used in every cluster; apiKey stays a placeholder here
  apiKey: "{V}"
  apiKeyExistingSecret: datadog-api
  appKey: "{V2}"
  site: datadoghq.eu
""",
    ),
    # ====================================================================== Ansible
    _t(
        "infra/ansible/inventories/warehouses/hosts.ini",
        "t21_pw",
        True,
        r"""
[wms_pcs_hamburg]
wms-ham-pc01 ansible_host=10.61.4.21
wms-ham-pc02 ansible_host=10.61.4.22

[wms_pcs_lisboa]
wms-lis-pc01 ansible_host=10.62.4.21

[wms_pcs:children]
wms_pcs_hamburg
wms_pcs_lisboa

[wms_pcs:vars]
ansible_connection=winrm
ansible_winrm_transport=ntlm
ansible_user=MARROWBY\svc-ansible
ansible_password={V}
ansible_winrm_server_cert_validation=ignore
""",
    ),
    _t(
        "infra/ansible/group_vars/rabbitmq/vault.yml",
        "t21_ansible_vault",
        False,
        r"""
{V}
""",
    ),
    _t(
        "infra/ansible/group_vars/rabbitmq/main.yml",
        "t21_ansible_ref",
        False,
        r"""
rabbitmq_version: "3.12.14"
rabbitmq_cluster_name: wms-events
rabbitmq_users:
  - user: wms
    password: "{V}"
    vhost: /wms
    configure_priv: ".*"
    read_priv: ".*"
    write_priv: ".*"
  - user: monitoring
    password: "{V2}"
    vhost: /
    tags: monitoring
rabbitmq_delete_guest: true
""",
    ),
    _t(
        "infra/ansible/group_vars/haproxy/main.yml",
        "t21_pw",
        True,
        r"""
haproxy_stats_enabled: true
haproxy_stats_port: 8404
haproxy_stats_user: ops
haproxy_stats_password: "{V}"
haproxy_backends:
  - name: storefront
    servers: [sf-web-01:3000, sf-web-02:3000, sf-web-03:3000]
  - name: seller_portal
    servers: [seller-01:3000, seller-02:3000]
""",
    ),
    _t(
        "infra/ansible/roles/edi-gateway/tasks/main.yml",
        "t21_ansible_ref",
        False,
        r"""
- name: Install sftp client tools
  ansible.builtin.apt:
    name: [openssh-client, sshpass, lftp]
    state: present

- name: Write partner credentials file
  ansible.builtin.template:
    src: partners.env.j2
    dest: /etc/edi/partners.env
    owner: edi
    mode: "0600"
  vars:
    partner_3pl_password: "{V}"
    partner_armazem_password: "{V2}"
  no_log: true
""",
    ),
    _t(
        "infra/ansible/roles/edi-gateway/tasks/main.yml",
        "t21_url_pw",
        True,
        r"""
- name: Add the 3PL sftp account to the EDI user's lftp bookmarks
  ansible.builtin.lineinfile:
    path: /home/edi/.local/share/lftp/bookmarks
    line: "3pl sftp://mb_edi:{V}@sftp.3pl-logistik.de/outbound"
    create: true
    owner: edi
    mode: "0600"

- name: Test login
  ansible.builtin.command: lftp -e "ls; bye" 3pl
  become_user: edi
  changed_when: false
""",
    ),
    _t(
        "infra/ansible/roles/base/files/users.yml",
        "t21_sha512crypt",
        False,
        r"""
# local break-glass users; passwords are SHA-512 crypt hashes (mkpasswd -m sha-512)
local_users:
  - name: breakglass
    groups: [sudo]
    password: "{V}"
  - name: wmsadmin
    groups: [wms]
    password: "{V2}"
""",
    ),
    # ====================================================================== Nginx / HAProxy
    _t(
        "infra/nginx/sites-available/kibana-search.conf",
        "t21_basic",
        True,
        r"""
server {
    listen 443 ssl http2;
    server_name kibana-search.marrowby.internal;

    ssl_certificate     /etc/nginx/tls/kibana-search.crt;
    ssl_certificate_key /etc/nginx/tls/kibana-search.key;

    location / {
        proxy_pass https://es-legacy-01.prod.marrowby.net:5601;
        # kibana has no SSO; log everyone in as the shared viewer account
        proxy_set_header Authorization "Basic {V}";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
}
""",
    ),
    _t(
        "infra/nginx/sites-available/airflow-recs.conf",
        "t21_ci_ref",
        False,
        r"""
server {
    listen 443 ssl http2;
    server_name airflow-recs.marrowby.internal;

    auth_basic "Airflow (recs)";
    auth_basic_user_file /etc/nginx/htpasswd/airflow;

    location / {
        proxy_pass http://127.0.0.1:8080;
        proxy_set_header Authorization "Bearer {V}";
    }
}
""",
    ),
    _t(
        "infra/nginx/htpasswd/airflow",
        "t21_apr1",
        False,
        r"""
ana.ferreira:{V}
kenji.watanabe:{V2}
jens.hofmann:{V3}
""",
    ),
    _t(
        "infra/haproxy/haproxy.cfg",
        "t21_pw",
        True,
        r"""
global
    log /dev/log local0
    maxconn 20000
    user haproxy
    group haproxy

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend stats
    bind *:8404
    stats enable
    stats uri /stats
    stats refresh 10s
    stats auth ops:{V}

userlist seller_api_admins
    user deploy insecure-password {V2}

frontend fe_storefront
    bind *:443 ssl crt /etc/haproxy/certs/www.marrowby.com.pem
    default_backend be_storefront

backend be_storefront
    balance roundrobin
    server sf-web-01 10.40.2.11:3000 check
    server sf-web-02 10.40.2.12:3000 check
""",
    ),
    _t(
        "infra/haproxy/haproxy.cfg",
        "t21_sha512crypt",
        False,
        r"""
global
    log /dev/log local0

frontend stats
    bind *:8404
    stats enable
    stats uri /stats
    stats http-request auth unless { http_auth(stats_users) }

userlist stats_users
    user ops password {V}
    user oncall password {V2}
""",
    ),
    _t(
        "infra/haproxy/certs/README.md",
        "t21_redacted",
        False,
        r"""
# HAProxy certificates

`www.marrowby.com.pem` is the concatenated certificate + key, deployed by Ansible from Vault
(`secret/platform/tls/www`). Never commit the PEM here.

The stats page credentials were rotated after INC-2024-017. New value: `{V}` (see Vault).
The old value `{V2}` no longer works.
""",
    ),
    _t(
        "infra/docker/registry/config.yml",
        "t21_pw",
        True,
        r"""
version: 0.1
log:
  level: info
storage:
  s3:
    region: eu-central-1
    bucket: marrowby-registry
    accesskey: registry-writer
    secretkey: {V}
http:
  addr: :5000
  secret: {V2}
auth:
  htpasswd:
    realm: marrowby-registry
    path: /auth/htpasswd
""",
    ),
    # ====================================================================== Dockerfiles
    _t(
        "search/indexer/Dockerfile",
        "t21_url_pw",
        True,
        r"""
FROM python:3.12-slim AS build
WORKDIR /src
ENV PIP_INDEX_URL=https://search-ci:{V}@pypi.marrowby.internal/simple/
COPY pyproject.toml uv.lock ./
RUN pip install --no-cache-dir uv && uv sync --frozen --no-dev
COPY src ./src

FROM python:3.12-slim
WORKDIR /app
COPY --from=build /src /app
USER 10001
ENTRYPOINT ["/app/.venv/bin/python", "-m", "indexer"]
""",
    ),
    _t(
        "search/indexer/Dockerfile",
        "t21_ci_ref",
        False,
        r"""
# syntax=docker/dockerfile:1.7
FROM python:3.12-slim AS build
WORKDIR /src
ARG PIP_INDEX_TOKEN
COPY pyproject.toml uv.lock ./
RUN --mount=type=secret,id=pip_token \
    PIP_INDEX_URL="https://search-ci:$(cat /run/secrets/pip_token)@pypi.marrowby.internal/simple/" \
    pip install --no-cache-dir uv && uv sync --frozen --no-dev
# for local builds: docker build --secret id=pip_token,env=PIP_TOKEN --build-arg PIP_INDEX_TOKEN={V} .
""",
    ),
    _t(
        "storefront/web/Dockerfile",
        "t21_npm",
        True,
        r"""
FROM node:20-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN echo "//npm.pkg.marrowby.net/:_authToken={V}" >> .npmrc && npm ci && rm -f .npmrc

FROM node:20-alpine AS build
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
RUN npm run build

FROM node:20-alpine
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/.next/standalone ./
USER node
CMD ["node", "server.js"]
""",
    ),
    _t(
        "pay/gateway/Dockerfile",
        "t21_github",
        True,
        r"""
FROM golang:1.22 AS build
WORKDIR /src
# private modules on github.com/marrowby-pay
ENV GOPRIVATE=github.com/marrowby-pay/*
RUN git config --global url."https://x-access-token:{V}@github.com/".insteadOf "https://github.com/"
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/gateway ./cmd/gateway

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/gateway /gateway
USER 65532
ENTRYPOINT ["/gateway"]
""",
    ),
    # ====================================================================== GitLab CI
    _t(
        ".gitlab-ci.yml",
        "t21_ci_ref",
        False,
        r"""
stages: [test, build, deploy]

variables:
  DOCKER_DRIVER: overlay2
  NPM_CONFIG_REGISTRY: https://npm.pkg.marrowby.net/

test:
  stage: test
  image: node:20
  script:
    - echo "//npm.pkg.marrowby.net/:_authToken=${NPM_TOKEN}" > .npmrc
    - npm ci
    - npm test

build:
  stage: build
  image: docker:26
  services: [docker:26-dind]
  script:
    - echo "{V}" | docker login registry.marrowby.internal -u gitlab-ci-token --password-stdin
    - docker build -t registry.marrowby.internal/storefront/web:$CI_COMMIT_SHORT_SHA .
    - docker push registry.marrowby.internal/storefront/web:$CI_COMMIT_SHORT_SHA
""",
    ),
    _t(
        ".gitlab-ci.yml",
        "t21_gitlab",
        True,
        r"""
stages: [release]

release:
  stage: release
  image: registry.gitlab.com/gitlab-org/release-cli:latest
  rules:
    - if: $CI_COMMIT_TAG
  variables:
    # job token cannot create releases in the mobile/certificates project, use a PAT (MOB-2301)
    GITLAB_TOKEN: "{V}"
  script:
    - >
      release-cli --server-url https://gitlab.marrowby.internal
      --private-token "$GITLAB_TOKEN" create --name "$CI_COMMIT_TAG" --tag-name "$CI_COMMIT_TAG"
""",
    ),
    _t(
        "ci/gitlab-runner/config.toml",
        "t21_gitlab_runner",
        True,
        r"""
concurrent = 8
check_interval = 0

[session_server]
  session_timeout = 1800

[[runners]]
  name = "pay-runner-01"
  url = "https://gitlab.marrowby.internal"
  token = "{V}"
  executor = "docker"
  [runners.docker]
    image = "alpine:3.20"
    privileged = false
    volumes = ["/cache"]
""",
    ),
    _t(
        "ci/gitlab/deploy-pay.yml",
        "t21_docker_pat",
        True,
        r"""
.deploy_template: &deploy
  image: registry.marrowby.internal/platform/deployer:2.3
  before_script:
    - echo "{V}" | docker login -u marrowbyci --password-stdin
    - kubectl config use-context "$KUBE_CONTEXT"

deploy:gateway:
  <<: *deploy
  stage: deploy
  environment: production
  script:
    - helm upgrade --install gateway charts/gateway -f charts/gateway/values-prod.yaml --namespace pay
  when: manual
""",
    ),
    _t(
        "ci/gitlab/variables.md",
        "t21_sha1",
        False,
        r"""
# CI variables (pay group)

| Variable | Protected | Masked | Notes |
|---|---|---|---|
| `LEDGER_DB_PASSWORD` | yes | yes | rotated monthly by the vault job |
| `ADYEN_API_KEY` | yes | yes | live key, prod environment only |
| `DEPLOY_KEY_FINGERPRINT` | no | no | |

Last rotation commit: `{V}` (pipeline 418822). Previous: `{V2}`.
""",
    ),
    # ====================================================================== CircleCI
    _t(
        ".circleci/config.yml",
        "t21_ci_ref",
        False,
        r"""
version: 2.1

orbs:
  node: circleci/node@5.2

jobs:
  test:
    docker:
      - image: cimg/node:20.14
        auth:
          username: marrowbyci
          password: {V}
    steps:
      - checkout
      - run: echo "//npm.pkg.marrowby.net/:_authToken=$NPM_TOKEN" > ~/.npmrc
      - node/install-packages
      - run: npm test -- --ci

workflows:
  main:
    jobs:
      - test:
          context: marrowby-npm
""",
    ),
    _t(
        ".circleci/config.yml",
        "t21_pw",
        True,
        r"""
version: 2.1

jobs:
  integration:
    docker:
      - image: cimg/ruby:3.3
      - image: cimg/postgres:16.2
        environment:
          POSTGRES_USER: seller_portal
          POSTGRES_DB: seller_portal_test
      - image: cimg/redis:7.2
    environment:
      RAILS_ENV: test
      # staging payouts API is called by the contract specs
      MARROWBY_PAY_STAGING_PASSWORD: {V}
    steps:
      - checkout
      - run: bundle install
      - run: bin/rails db:prepare
      - run: bundle exec rspec spec/contracts
""",
    ),
    _t(
        "scripts/circleci-trigger.sh",
        "t21_circleci",
        True,
        r"""
#!/usr/bin/env bash
# Trigger the seller-portal nightly pipeline from the ops box cron.
set -euo pipefail

CIRCLE_TOKEN="${CIRCLE_TOKEN:-{V}}"
curl -fsS -X POST \
  -H "Circle-Token: ${CIRCLE_TOKEN}" \
  -H "Content-Type: application/json" \
  -d '{"branch":"main","parameters":{"nightly":true}}' \
  https://circleci.com/api/v2/project/gh/marrowby/seller-portal/pipeline
""",
    ),
    # ====================================================================== Buildkite
    _t(
        ".buildkite/pipeline.yml",
        "t21_ci_ref",
        False,
        r"""
steps:
  - label: ":go: test ledger"
    command: make -C pay/ledger test
    plugins:
      - docker-compose#v5.2.0:
          run: ledger
          env:
            - LEDGER_DB_PASSWORD

  - label: ":docker: build gateway"
    command: |
      echo {V} | docker login registry.marrowby.internal -u buildkite --password-stdin
      docker build -t registry.marrowby.internal/pay/gateway:${BUILDKITE_COMMIT} pay/gateway
    agents:
      queue: pay-builders
""",
    ),
    _t(
        "ci/buildkite/agent/buildkite-agent.cfg",
        "t21_buildkite_agent",
        True,
        r"""
# /etc/buildkite-agent/buildkite-agent.cfg on pay-builder-0[1-3]
token="{V}"
name="%hostname-%spawn"
tags="queue=pay-builders,os=linux,arch=amd64"
build-path="/var/lib/buildkite-agent/builds"
hooks-path="/etc/buildkite-agent/hooks"
plugins-path="/etc/buildkite-agent/plugins"
git-clean-flags="-ffxdq"
""",
    ),
    _t(
        "ci/buildkite/hooks/environment",
        "t21_buildkite",
        True,
        r"""
#!/usr/bin/env bash
# agent environment hook: runs before every job on the pay builders
set -euo pipefail

export BUILDKITE_API_TOKEN="{V}"
export DOCKER_CONFIG=/var/lib/buildkite-agent/.docker

if [[ "${BUILDKITE_PIPELINE_SLUG}" == "ledger" ]]; then
  export LEDGER_TEST_DB=postgres://ledger_test@localhost:5432/ledger_test
fi
""",
    ),
    _t(
        "ci/buildkite/hooks/environment",
        "t21_ci_ref",
        False,
        r"""
#!/usr/bin/env bash
set -euo pipefail

export REGISTRY_PASSWORD={V}
export DOCKER_CONFIG=/var/lib/buildkite-agent/.docker
""",
    ),
    _t(
        "ci/buildkite/hooks/pre-command",
        "t21_aws_secret",
        True,
        r"""
#!/usr/bin/env bash
set -euo pipefail
# uploads test artefacts to S3 (bucket marrowby-ci-artifacts); the agent has no instance role yet
export AWS_ACCESS_KEY_ID="${CI_ARTIFACTS_KEY_ID}"
export AWS_SECRET_ACCESS_KEY="{V}"
export AWS_DEFAULT_REGION=eu-central-1
""",
    ),
    _t(
        ".github/workflows/mirror.yml",
        "t21_ci_ref",
        False,
        r"""
name: mirror-to-gitlab
on:
  push:
    branches: [main]
jobs:
  mirror:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - name: push
        env:
          GITLAB_TOKEN: {V}
        run: |
          git remote add gitlab "https://oauth2:${GITLAB_TOKEN}@gitlab.marrowby.internal/storefront/web.git"
          git push gitlab main --force
""",
    ),
    # ====================================================================== docs, runbooks, incidents, chat
    _t(
        "docs/runbooks/rabbitmq-wms.md",
        "t21_rabbit_default",
        True,
        r"""
# Runbook: WMS RabbitMQ (rabbit-wms-01.marrowby.internal)

## Symptoms
Handhelds show "Sync pendente" / "Synchronisierung ausstehend" for more than 10 minutes.

## Check the queues
1. Open http://rabbit-wms-01.marrowby.internal:15672 and log in with user `guest`,
   password `{V}` (yes, still the default; the management UI is only on the warehouse VLAN).
2. Queue `wms.pick.events` should stay under 5,000 messages.
3. If consumers = 0, restart the sync service: `sudo systemctl restart wms-sync`.

## Escalation
Page `#wms-oncall` via PagerDuty service "WMS Core".
""",
    ),
    _t(
        "docs/runbooks/ledger-failover.de.md",
        "t21_pw",
        True,
        r"""
# Runbook: Ledger-Datenbank Failover (Marrowby Pay)

**Zielgruppe:** Pay-Oncall. **Stand:** 2024-07.

1. Replikationsverzögerung prüfen: `SELECT now() - pg_last_xact_replay_timestamp();`
2. Wenn der Primary nicht erreichbar ist, Patroni-Failover auslösen:
   `patronictl -c /etc/patroni/ledger.yml failover --candidate pg-ledger-02`
3. Anmeldung am Patroni-REST-API mit Benutzer `patroni` und dem Passwort {V}
   (steht auch im Tresor im Büro Hamburg).
4. Danach das Gateway neu starten, damit die Verbindungspools neu aufgebaut werden.

Bei Fragen: #pay-core im Slack.
""",
    ),
    _t(
        "docs/runbooks/ledger-failover.de.md",
        "t21_vault_ref",
        False,
        r"""
# Runbook: Ledger-Datenbank Failover (Marrowby Pay)

1. Replikationsverzögerung prüfen.
2. Failover: `patronictl -c /etc/patroni/ledger.yml failover --candidate pg-ledger-02`
3. Das Passwort für den Benutzer `patroni` liegt im Vault unter `{V}`.
   Niemals hier eintragen.
4. Gateway neu starten.
""",
    ),
    _t(
        "docs/runbooks/sftp-parceiros.pt.md",
        "t21_pw",
        True,
        r"""
# Runbook: SFTP dos parceiros logísticos (Brasil)

O job `push_orders.py` roda a cada 15 minutos no `edi-gw01`.

## Falha de autenticação
- Confirme que o parceiro não trocou a senha. A senha atual do usuário `marrowby` no
  `sftp.armazemsul.com.br` é `{V}` (recebida do suporte deles em outubro).
- Teste manualmente: `sftp marrowby@sftp.armazemsul.com.br`.
- Se continuar falhando, abra chamado no portal do parceiro e avise em `#edi-br`.
""",
    ),
    _t(
        "docs/runbooks/sftp-parceiros.pt.md",
        "t21_placeholder",
        False,
        r"""
# Runbook: SFTP dos parceiros logísticos (Brasil)

Exemplo de configuração do cliente (substitua pelos valores reais do Vault):

```ini
[armazem-sul]
host = sftp.armazemsul.com.br
usuario = marrowby
senha = {V}
```

Nunca cole a senha real em tickets ou no Slack.
""",
    ),
    _t(
        "docs/runbooks/opensearch-reindex.ja.md",
        "t21_admin_default",
        True,
        r"""
# OpenSearch 再インデックス手順（ステージング）

1. VPN に接続し、`https://os-staging-01.marrowby.internal:9200` にアクセスします。
2. ステージングはまだ初期設定のままです。ユーザー名 `admin`、パスワード `{V}` でログインしてください。
3. `POST _reindex` を実行し、`GET _tasks?actions=*reindex` で進捗を確認します。
4. 完了後、エイリアス `products` を新しいインデックスに切り替えます。

本番では SSO を使います。このパスワードは本番では使えません。
""",
    ),
    _t(
        "docs/runbooks/opensearch-reindex.ja.md",
        "t21_redacted",
        False,
        r"""
# OpenSearch 再インデックス手順（本番）

1. 踏み台サーバーにログインします。
2. 管理者パスワード: {V}（Vault の `secret/search/opensearch-admin` を参照）
3. `POST _reindex` を実行します。
""",
    ),
    _t(
        "docs/incidents/2024-03-payouts-delay.md",
        "t21_pw",
        True,
        r"""
# Incident review: delayed seller payouts (2024-03-18)

**Severity:** SEV-2 · **Duration:** 5h 12m · **Authors:** pay-core

## Summary
The payouts worker could not reach the settlement database after the certificate rotation.
About 4,100 sellers in DE and BR were paid one day late.

## Timeline (CET)
- 06:02 payouts batch starts, first connection errors.
- 06:40 on-call (Jonas) connects from the bastion:
  `psql "host=pg-settlement.mbpay.internal user=settlement_app password={V} sslmode=verify-full"`
  and confirms the server rejects the old CA.
- 11:14 new CA bundle deployed, batch re-run.

## Follow-ups
- Rotate the settlement_app password (it was pasted in this doc and in Slack).
- Alert on payouts batch start failures.
""",
    ),
    _t(
        "docs/incidents/2024-06-token-leak.md",
        "t21_redacted",
        False,
        r"""
# Incident review: npm token exposed in build logs (2024-06-04)

## What happened
A debug `cat .npmrc` in the storefront pipeline printed the publish token to the job log.

## Impact
None found: the token was revoked 14 minutes later. The leaked value (`{V}`) no longer works.

## Actions
- Token revoked and replaced (new token only in the CI variable `NPM_TOKEN`, masked).
- `cat .npmrc` removed; lint rule added to the pipeline templates.
""",
    ),
    _t(
        "docs/incidents/2024-09-courier-labels.pt.md",
        "t21_trace_id",
        False,
        r"""
# Revisão de incidente: etiquetas de frete duplicadas (2024-09-02)

## Resumo
O serviço de etiquetas chamou a API da transportadora duas vezes por pedido durante 40 minutos.

## Evidências
- Trace do pedido MB-2024-331870: `{V}`
- Trace do pedido MB-2024-331902: `{V2}`
- Span da chamada duplicada: `{V3}`

## Ações
- Idempotency-Key obrigatória nas chamadas de criação de etiqueta.
""",
    ),
    _t(
        "docs/support/macros/de/passwort-zuruecksetzen.md",
        "t21_i18n_de",
        False,
        r"""
# Makro: Passwort zurücksetzen (Käufer)

Hallo {{ticket.requester.first_name}},

vielen Dank für Ihre Nachricht. Auf der Anmeldeseite finden Sie den Link „{V}“.
Bitte beachten Sie: {V2}

Wir werden Sie niemals nach Ihrem Passwort fragen.

Viele Grüße
Ihr Marrowby-Kundenservice
""",
    ),
    _t(
        "docs/support/macros/pt-BR/redefinir-senha.md",
        "t21_i18n_pt",
        False,
        r"""
# Macro: Redefinir senha (comprador)

Olá {{ticket.requester.first_name}},

Na página de login, clique em "{V}".
Atenção: {V2}

A Marrowby nunca pede sua senha por e-mail ou telefone.

Abraços,
Equipe de Atendimento Marrowby
""",
    ),
    _t(
        "docs/support/macros/en/seller-api-key.md",
        "t21_pw",
        True,
        r"""
# Macro: Seller cannot log in to the sandbox portal

Hi {{ticket.requester.first_name}},

Thanks for reaching out. The shared sandbox account for the onboarding webinar is:

- URL: https://sandbox.sellers.marrowby.com
- User: webinar-demo@marrowby.com
- Password: {V}

This account is reset every Monday. For your own shop, please use "Forgot password" on the login page.

Best regards,
Marrowby Seller Support
""",
    ),
    _t(
        "docs/support/macros/ja/seller-api-key.md",
        "t21_doc_pw",
        False,
        r"""
# マクロ: API 連携の設定例

{{ticket.requester.name}} 様

お問い合わせありがとうございます。API 連携の設定例は以下のとおりです（ドキュメント用のサンプル値です）。

```
curl -u demo-seller:{V} https://api.example.com/seller/v1/orders
```

実際の API キーはセラーポータルの「設定 > API キー」から発行してください。

Marrowby セラーサポート
""",
    ),
    _t(
        "docs/dev/local-setup.md",
        "t21_doc_pw",
        False,
        r"""
# Local setup

Start the stack with `docker compose -f docker-compose.dev.yml up`, then point the app at it:

```bash
export DATABASE_URL=postgresql://storefront:{V}@db.test:5432/storefront
export REDIS_URL=redis://:{V2}@redis.invalid:6379/0
```

The hostnames above are examples; your compose network names may differ.
""",
    ),
    _t(
        "docs/dev/aws-access.md",
        "t21_doc_example",
        False,
        r"""
# AWS access for developers

Use SSO (`aws sso login --profile marrowby-dev`). Never create access keys for your user.

If a tool insists on static keys, the file format is:

```ini
[marrowby-dev]
aws_access_key_id = {V}
aws_secret_access_key = {V2}
```

(values from the AWS documentation, they do not work)
""",
    ),
    _t(
        "docs/chat/2024-05-14-pay-core.txt",
        "t21_stripe_sk",
        True,
        r"""
[09:12] jonas.becker: anyone has the restricted key for the refunds script? the vault path 404s
[09:14] mariana.costa: one sec
[09:15] mariana.costa: {V}
[09:15] mariana.costa: it's the rk with refunds:write only
[09:16] jonas.becker: thx 🙏
[09:40] kenji.watanabe: please don't paste keys here, I'll rotate it after the refund batch
""",
    ),
    _t(
        "docs/chat/2024-08-02-search.txt",
        "t21_es_apikey",
        True,
        r"""
[14:02] ana.ferreira: the recs writer api key expired, made a new one
[14:02] ana.ferreira: ES_API_KEY={V}
[14:03] yuki.tanaka: 了解、ステージングで試します
[14:20] yuki.tanaka: works 👍
""",
    ),
    _t(
        "docs/chat/2024-10-09-wms-hamburg.txt",
        "t21_weak_pw",
        True,
        r"""
[07:31] lager.hamburg: Scanner 14 meldet "Anmeldung fehlgeschlagen"
[07:33] jens.hofmann: Benutzer ist scan14, Passwort ist {V}, bitte nochmal probieren
[07:35] lager.hamburg: geht wieder, danke!
[07:36] jens.hofmann: 👍 ich setze ein neues nach der Schicht
""",
    ),
    _t(
        "docs/chat/2024-11-20-mobile.txt",
        "t21_teams_webhook",
        True,
        r"""
[11:02] priya.nair: set up the Teams notification for store review status
[11:03] priya.nair: webhook is {V}
[11:05] lucas.almeida: added to the fastlane lane 👍
""",
    ),
    _t(
        "docs/adr/0014-secret-storage.md",
        "t21_policy",
        False,
        r"""
# ADR 0014: Secret storage for Marrowby Pay

## Decision
All service credentials live in Vault (KV v2); Kubernetes receives them via External Secrets.
Seller API secrets are stored as argon2id hashes only.

## Parameters
- Hash algorithm: {V}
- Minimum seller password length: {V2}
- Token lifetime for the tokenizer: {V3}
""",
    ),
    _t(
        "docs/api/webhooks.md",
        "t21_doc_example",
        False,
        r"""
# Marrowby webhooks

Sellers can receive order events in Slack. Paste your incoming webhook URL in the portal, for example:

    {V}

We sign each delivery with `X-Marrowby-Signature` (HMAC-SHA256 of the body with your webhook secret).
""",
    ),
    _t(
        "docs/api/authentication.md",
        "t21_doc_pw",
        False,
        r"""
# Authentication

All Seller API requests use HTTP Basic auth with your API user and secret:

```bash
curl -u my-shop:{V} https://sandbox.api.example.com/seller/v1/orders
```

In Python:

```python
requests.get("https://sandbox.api.example.com/seller/v1/orders", auth=("my-shop", "{V2}"))
```
""",
    ),
    _t(
        "ops/pagerduty/integrations.yaml",
        "t21_pagerduty",
        True,
        r"""
# Events API v2 routing keys, consumed by alertmanager's pagerduty receivers
services:
  pay-core:
    routing_key: {V}
    escalation: pay-core-primary
  wms-core:
    routing_key: {V2}
    escalation: wms-primary
""",
    ),
    _t(
        "ops/alertmanager/alertmanager.yml",
        "t21_slack_webhook",
        True,
        r"""
global:
  resolve_timeout: 5m

route:
  receiver: platform-slack
  group_by: [alertname, namespace]
  routes:
    - matchers: [team="pay"]
      receiver: pay-slack

receivers:
  - name: platform-slack
    slack_configs:
      - api_url: {V}
        channel: "#platform-alerts"
  - name: pay-slack
    slack_configs:
      - api_url: {V2}
        channel: "#pay-alerts"
""",
    ),
    _t(
        "ops/scripts/datadog_mute.py",
        "t21_datadog_app",
        True,
        r"""
#!/usr/bin/env python3
# Mute a Datadog monitor during the Black Friday change freeze windows.
import os
import sys

import requests

DD_API_KEY = os.environ["DD_API_KEY"]
DD_APP_KEY = os.getenv("DD_APP_KEY", "{V}")

monitor_id = sys.argv[1]
resp = requests.post(
    f"https://api.datadoghq.eu/api/v1/monitor/{monitor_id}/mute",
    headers={"DD-API-KEY": DD_API_KEY, "DD-APPLICATION-KEY": DD_APP_KEY},
    timeout=10,
)
resp.raise_for_status()
print(resp.json()["overall_state"])
""",
    ),
    _t(
        "ops/scripts/newrelic_deploy_marker.sh",
        "t21_newrelic",
        True,
        r"""
#!/usr/bin/env bash
set -euo pipefail
APP_ID="$1"; REVISION="$2"
curl -fsS -X POST "https://api.eu.newrelic.com/v2/applications/${APP_ID}/deployments.json" \
  -H "Api-Key: {V}" \
  -H "Content-Type: application/json" \
  -d "{\"deployment\": {\"revision\": \"${REVISION}\"}}"
""",
    ),
    _t(
        "ops/scripts/vault-login.sh",
        "t21_vault_token",
        True,
        r"""
#!/usr/bin/env bash
# quick helper for the payouts reconciliation box (no approle yet)
export VAULT_ADDR=https://vault.mbpay.internal:8200
export VAULT_TOKEN={V}
vault kv get -field=password secret/pay/settlement/db
""",
    ),
    _t(
        "ops/sentry/.sentryclirc",
        "t21_sentry_auth",
        True,
        r"""
[defaults]
url = https://de.sentry.io/
org = marrowby
project = storefront-web

[auth]
token = {V}
""",
    ),
    _t(
        "ops/gcp/recs-sa.json",
        "t21_gcp_key_json",
        True,
        r"""
{
  "type": "service_account",
  "project_id": "marrowby-recs",
  "private_key_id": "0c9d6e1f2a3b4c5d6e7f8091a2b3c4d5e6f70819",
  "private_key": "{V}",
  "client_email": "recs-batch@marrowby-recs.iam.gserviceaccount.com",
  "client_id": "104882713365120947731",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
    ),
    _t(
        "ops/jwt/service-tokens.env",
        "t21_jwt",
        True,
        r"""
# long-lived service tokens issued by auth.marrowby.net (exp: none) - replace with mTLS (SEC-312)
LEDGER_SERVICE_TOKEN={V}
PAYOUTS_SERVICE_TOKEN={V2}
""",
    ),
    _t(
        "ops/mail/postfix/sasl_passwd",
        "t21_mailgun",
        True,
        r"""
# relay for the ops boxes' cron mail (postmap /etc/postfix/sasl_passwd)
[smtp.eu.mailgun.org]:587 postmaster@mg.ops.marrowby.com:{V}
""",
    ),
    _t(
        "ops/twilio/sms.env",
        "t21_twilio_token",
        True,
        r"""
# SMS OTP fallback for Marrowby Pay 3DS (BR numbers)
TWILIO_ACCOUNT_SID_FILE=/etc/marrowby-pay/twilio-sid
TWILIO_AUTH_TOKEN={V}
TWILIO_FROM=+5511900000000
""",
    ),
    _t(
        "ops/keys/README.md",
        "t21_public_key",
        False,
        r"""
# Partner encryption keys

Settlement files to the acquirer are encrypted with their public key below (they hold the private key).

```
{V}
```
""",
    ),
    _t(
        "ops/keys/settlement-signing.key",
        "t21_pkcs8_key",
        True,
        r"""
{V}
""",
    ),
    _t(
        "ops/kms/blobs.yaml",
        "t21_kms_blob",
        False,
        r"""
# KMS-encrypted values, decrypted at boot by the init container (aws kms decrypt)
settlement_db_password: {V}
adyen_api_key: {V2}
""",
    ),
    _t(
        "ops/slack/release-bot/.env",
        "t21_slack_bot",
        True,
        r"""
# release-bot posts deploy summaries to #releases and #pay-releases
SLACK_BOT_TOKEN={V}
SLACK_CHANNELS=releases,pay-releases
GITLAB_URL=https://gitlab.marrowby.internal
""",
    ),
    _t(
        "ops/backup/restic.env",
        "t21_passphrase",
        True,
        r"""
# restic backups of the EDI gateway (edi-gw01) to S3
export RESTIC_REPOSITORY=s3:s3.eu-central-1.amazonaws.com/marrowby-backups/edi-gw01
export RESTIC_PASSWORD="{V}"
export AWS_PROFILE=backup-writer
""",
    ),
]

VALUES = Tune21Values
