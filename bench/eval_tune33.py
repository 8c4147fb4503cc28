"""Blind part ``tune33``: an online insurer, Brightmoor Direct (BMD: car, home, travel and pet
insurance sold online in the Netherlands as Brightmoor Verzekeringen and in Poland as Brightmoor
Ubezpieczenia), with its brokers, comparison-site partners, payment providers and vendors. Files are
the quote and policy web apps (a Next.js storefront, a Django quote engine with Celery, a Spring
Boot policy API, a Go quote API, a Rails broker portal, a Laravel customer portal, a WordPress
marketing site, an Express agent desk, ASP.NET claims and legacy policy-admin apps on Tomcat and
IIS), claims processing (document OCR workers on Azure Form Recognizer, AWS Textract and Google
Vision, MinIO, Azure Functions and a Lambda callback, a claims summariser on an LLM API, fraud
models in notebooks with MLflow and Databricks, a Kotlin fraud-scoring client), actuarial data
science (R, SAS and Python notebooks on Snowflake and Oracle, exposure samples), broker and partner
APIs (Kong, an OpenAPI spec, comparison-site OAuth clients, HMAC-signed webhooks, .http files, SOAP
smoke tests, partner SFTP), payment providers (Mollie, Adyen, Stripe, PayU and Przelewy24, SEPA
payouts), the call centre (Asterisk PJSIP trunks, Genesys Cloud, a Twilio IVR, an Elixir event
service, MessageBird and SMSAPI.pl text messages), mobile apps (Android Gradle, keystore and
signing files, iOS fastlane and App Store Connect keys, FCM push, Mapbox, reCAPTCHA), the data
warehouse and ETL (dbt, Airflow, Kafka/Confluent, Spark, SQL Server, Oracle, PostgreSQL and MySQL
scripts and dumps), IT infrastructure (Cisco and FortiGate configs, Windows domain scripts, Ansible,
OpenVPN, golden images, bastion keys, TLS files), CI/CD (GitHub Actions, GitLab CI and runners,
Jenkins, Azure Pipelines, Renovate, npm, NuGet, Docker Hub, JFrog and git credentials), cloud
(Terraform for AWS, Azure and GCP, Kubernetes, Helm, Argo CD, Vault, SOPS and age, sealed secrets,
Spring Cloud Config), monitoring and chat-ops (New Relic, Alertmanager, PagerDuty, Hubot on Slack,
Teams, Telegram), and runbooks, handover notes, tickets, password-manager exports and chat exports
in English, Dutch and Polish. Written blind (without seeing the scanner, its rules or other parts'
templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt,
argon2, Django PBKDF2, sha512-crypt, Cisco type 5/8/9, MySQL, PostgreSQL SCRAM, ASP.NET Identity,
htpasswd), values encrypted at rest (Ansible Vault, SOPS, sealed secrets, Jasypt, Spring Cloud
Config ``{cipher}``, AWS KMS, Vault transit, FortiGate ``ENC``, Jenkins, Rails credentials,
encrypted PEM keys), references to environment variables, templating and secret stores in many
languages and tools, placeholders and redactions in English, Dutch and Polish, public material
(certificates, public keys, SSH keys, JWKS, PGP and age recipients), identifiers shaped like
secrets (policy numbers, IBANs with valid check digits, Mollie payment ids, Twilio account SIDs,
MLflow run ids, document digests, image digests, lockfile checksums, signing-certificate
fingerprints, Stripe publishable keys, reCAPTCHA site keys, Apple team ids, OAuth client ids,
secret ARNs, commit SHAs, ticket numbers), UI text about passwords, documented example credentials
and credentials on documentation hosts, and test values that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import uuid
import zlib

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!#%^*-_=+.@"

OID_RSA = bytes.fromhex("06092a864886f70d010101") + b"\x05\x00"
OID_EC = bytes.fromhex("06072a8648ce3d0201")
OID_P256 = bytes.fromhex("06082a8648ce3d030107")
OID_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b") + b"\x05\x00"
OID_PBES2 = bytes.fromhex("06092a864886f70d01050d")


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _sshstr(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class Tune33Values(evalset.Values):
    """Value generators of the tune33 part; every name starts with ``t33_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "polder",
            "gracht",
            "molen",
            "duinen",
            "tulpen",
            "zeilboot",
            "bursztyn",
            "wawel",
            "mazury",
            "tatry",
            "premie",
            "dekking",
            "skladka",
            "vuurtoren",
            "kormoran",
        ]
        self.users = [
            "quote_api",
            "policy_svc",
            "claims_etl",
            "fraud_ml",
            "actuary_ro",
            "broker_gw",
            "cc_ivr",
            "dwh_loader",
            "ocr_worker",
            "payments",
            "bmd_deploy",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t33_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def t33_util_crc62(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t33_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t33_util_int(self, nbytes: int) -> bytes:
        raw = bytearray(self.rng.randbytes(nbytes))
        raw[0] |= 0x80
        return _tlv(0x02, b"\x00" + bytes(raw))

    def t33_util_rsa_der(self) -> bytes:
        parts = [
            b"\x02\x01\x00",
            self.t33_util_int(256),
            b"\x02\x03\x01\x00\x01",
            self.t33_util_int(256)[:-1] + b"\x01",
            self.t33_util_int(128),
            self.t33_util_int(128),
            self.t33_util_int(127),
            self.t33_util_int(127),
            self.t33_util_int(127),
        ]
        return _seq(*parts)

    def t33_util_ec_der(self) -> bytes:
        return _seq(
            b"\x02\x01\x01",
            _tlv(0x04, self.rng.randbytes(32)),
            _tlv(0xA0, OID_P256),
            _tlv(0xA1, _tlv(0x03, b"\x00\x04" + self.rng.randbytes(64))),
        )

    def t33_util_aws_id(self) -> str:
        return self.pick(["AKIA", "AKIA", "ASIA"]) + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    def t33_util_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def t33_pw(self) -> str:
        shape = self.rng.randrange(7)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            sep = self.pick(["-", ".", "_"])
            return f"{word.capitalize()}{sep}{other.capitalize()}{sep}{self.s(2, DIGITS)}"
        if shape == 3:
            return "Bmd" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(self.rng.randrange(16, 25), ALNUM)
        if shape == 5:
            leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
            return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)
        return (
            self.s(4, string.ascii_uppercase)
            + self.s(4, DIGITS)
            + self.s(6, string.ascii_lowercase)
        )

    def t33_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welkom01!",
                    "Welkom123",
                    "Haslo123!",
                    "Haslo2024",
                    "Polisa123",
                    "Verzekering1",
                    "Ubezpieczenie1",
                    "Qwerty123!",
                    "P@ssw0rd",
                    "Password1",
                    "Test1234!",
                    "letmein99",
                ]
            )
        if shape == 1:
            return "Brightmoor" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "01"])
        return self.pick(["Zomer", "Winter", "Lente", "Lato", "Zima", "Wiosna"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def t33_vendor_default(self) -> str:
        return self.pick(
            [
                "tomcat",
                "s3cret",
                "admin",
                "manager",
                "admin123",
                "Tomcat123",
                "tomcat1",
                "Admin@123",
            ]
        )

    def t33_user_eq_pw(self) -> str:
        return self.pick(
            [
                "claims_ro",
                "dwh_export",
                "bmd_etl",
                "cc_report",
                "actuary",
                "quote_test",
                "broker_sync",
                "ocr",
                "pricing",
            ]
        )

    def t33_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS) + self.s(3, ALNUM)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def t33_b64_pw(self) -> str:
        return base64.b64encode(self.t33_pw().encode()).decode()

    def t33_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-jenkins", "partner-rankomat", "independer"])
        return base64.b64encode(f"{user}:{self.t33_pw()}".encode()).decode()

    def t33_net_secret(self) -> str:
        if self.rng.randrange(2):
            return self.t33_pw()
        return "bmd" + self.pick(["Ro", "Mon", "Snmp"]) + "-" + self.s(10, LOWNUM)

    def t33_psk(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return " ".join(self.pick(self.words) for _ in range(3)) + " " + self.s(3, DIGITS)
        return self.pick(self.words).capitalize() + "-" + self.s(14, ALNUM + "#%+=")

    def t33_sip_secret(self) -> str:
        return self.s(self.rng.randrange(16, 25), ALNUM)

    def t33_totp(self) -> str:
        return self.s(32, B32)

    # ------------------------------------------------------------------ positives: connection strings
    def t33_db_uri(self) -> str:
        user = self.pick(self.users)
        pw = self.t33_url_pw()
        shape = self.rng.randrange(4)
        if shape == 0:
            host = self.pick(["pg-policy-01.bmd.internal", "claims-db.prod.bmd.internal"])
            return (
                f"postgresql://{user}:{pw}@{host}:5432/{self.pick(['policy', 'claims', 'quotes'])}"
            )
        if shape == 1:
            return f"mysql://{user}:{pw}@mysql-crm.bmd.internal:3306/crm?ssl-mode=REQUIRED"
        if shape == 2:
            return (
                f"mongodb+srv://{user}:{pw}@claims-docs.{self.s(5, LOWNUM)}.mongodb.net/"
                "documents?retryWrites=true&w=majority"
            )
        return f"postgres://{user}:{pw}@dwh-pg.bmd.internal:6432/staging?sslmode=require"

    def t33_redis_uri(self) -> str:
        host = self.pick(["redis-quote.bmd.internal", "cache-claims.prod.bmd.internal"])
        return f"rediss://default:{self.t33_url_pw()}@{host}:6380/{self.rng.randrange(0, 4)}"

    def t33_amqp_uri(self) -> str:
        return (
            f"amqps://{self.pick(self.users)}:{self.t33_url_pw()}@rabbit-cc.bmd.internal:5671/"
            + self.pick(["callcentre", "claims", "%2F"])
        )

    def t33_mssql_connstr(self) -> str:
        server = self.pick(
            ["sql-policyadmin01.bmd.local", "SQLPROD02\\POLADMIN", "10.40.2.15,1433"]
        )
        return (
            f"Server={server};Database={self.pick(['PolicyAdmin', 'Claims', 'Finance'])};"
            f"User Id={self.pick(self.users)};Password={self.t33_pw()};"
            "Encrypt=True;TrustServerCertificate=False;"
        )

    def t33_azure_storage(self) -> str:
        account = (
            "st" + self.pick(["bmdclaims", "bmdocr", "bmddwh", "bmdpolicydocs"]) + self.s(3, DIGITS)
        )
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self.t33_util_b64(64)};EndpointSuffix=core.windows.net"
        )

    def t33_azure_key88(self) -> str:
        return self.t33_util_b64(64)

    def t33_confluent_jaas(self) -> str:
        return (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{self.s(16, UPNUM)}" password="{self.s(64, ALNUM + "+/")}";'
        )

    # ------------------------------------------------------------------ positives: cloud
    def t33_aws_pair_ini(self) -> str:
        return (
            f"aws_access_key_id = {self.t33_util_aws_id()}\n"
            f"aws_secret_access_key = {self.t33_util_aws_secret()}"
        )

    def t33_aws_pair_env(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID={self.t33_util_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY={self.t33_util_aws_secret()}"
        )

    def t33_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t33_gcp_pk_escaped(self) -> str:
        der = _seq(b"\x02\x01\x00", _seq(OID_RSA), _tlv(0x04, self.t33_util_rsa_der()))
        return self.t33_util_armor("PRIVATE KEY", der).replace("\n", "\\n") + "\\n"

    def t33_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t33_tfc_token(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def t33_vault_token(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def t33_age_key(self) -> str:
        return "AGE-SECRET-KEY-1" + self.s(58, BECH32.upper())

    # ------------------------------------------------------------------ positives: vendor tokens
    def t33_github(self) -> str:
        return self.t33_util_crc62(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t33_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def t33_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t33_glrt(self) -> str:
        return "glrt-" + self.pick(["", "t1_"]) + self.s(20, URLSAFE)

    def t33_gldt(self) -> str:
        return "gldt-" + self.s(20, URLSAFE)

    def t33_npm(self) -> str:
        return self.t33_util_crc62("npm")

    def t33_nuget(self) -> str:
        return "oy2" + self.s(43, LOWNUM)

    def t33_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def t33_artifactory(self) -> str:
        return "AKCp" + self.pick(["5", "8"]) + self.s(68, ALNUM)

    def t33_jfrog_ref(self) -> str:
        inner = f"reftkn:01:{self.rng.randrange(1767225600, 1830297600)}:{self.s(33, ALNUM)}"
        return base64.b64encode(inner.encode()).decode().rstrip("=")

    def t33_sonar(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def t33_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t33_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            + self.s(24, ALNUM)
        )

    def t33_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://brightmoor.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}/IncomingWebhook/"
            f"{self.s(32, HEX)}/{ids[2]}/V2{self.s(43, URLSAFE)}"
        )

    def t33_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 8 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def t33_stripe_sk(self) -> str:
        if self.rng.randrange(2):
            return "sk_live_" + self.s(24, ALNUM)
        return "sk_live_51" + self.s(97, ALNUM)

    def t33_stripe_rk(self) -> str:
        return "rk_live_51" + self.s(97, ALNUM)

    def t33_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def t33_mollie(self) -> str:
        return "live_" + self.s(30, ALNUM)

    def t33_mollie_access(self) -> str:
        return "access_" + self.s(40, ALNUM)

    def t33_adyen_key(self) -> str:
        return f"AQE{self.t33_util_b64(70)}-{self.t33_util_b64(32)}-{self.s(16, ALNUM + '<>{}[]')}"

    def t33_hex16(self) -> str:
        return self.s(16, HEX)

    def t33_hex32(self) -> str:
        return self.s(32, HEX)

    def t33_hex64(self) -> str:
        return self.s(64, HEX)

    def t33_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t33_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t33_mailgun(self) -> str:
        if self.rng.randrange(2):
            return "key-" + self.s(32, HEX)
        return f"{self.s(32, HEX)}-{self.s(8, HEX)}-{self.s(8, HEX)}"

    def t33_messagebird(self) -> str:
        return self.s(25, ALNUM)

    def t33_smsapi(self) -> str:
        return self.s(40, ALNUM)

    def t33_genesys_secret(self) -> str:
        return self.s(43, URLSAFE)

    def t33_openai(self) -> str:
        tail = URLSAFE
        if self.rng.randrange(2):
            return f"sk-proj-{self.s(58, tail)}T3BlbkFJ{self.s(58, tail)}"
        return f"sk-svcacct-{self.s(58, tail)}T3BlbkFJ{self.s(58, tail)}"

    def t33_anthropic(self) -> str:
        return f"sk-ant-api03-{self.s(93, URLSAFE)}AA"

    def t33_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "", "-2", "-3"])

    def t33_nr_license(self) -> str:
        return self.s(36, HEX) + "NRAL"

    def t33_pagerduty(self) -> str:
        return "u+" + self.s(18, URLSAFE)

    def t33_atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, URLSAFE) + "=" + self.s(8, HEXU)

    def t33_oauth_secret(self) -> str:
        return self.pick(
            [self.s(48, URLSAFE), self.s(40, ALNUM), self.t33_util_b64(32, True, False)]
        )

    def t33_firebase_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t33_mapbox_sk(self) -> str:
        payload = json.dumps({"u": "brightmoor", "a": self.s(25, LOWNUM)}, separators=(",", ":"))
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"sk.{body}.{self.s(22, URLSAFE)}"

    def t33_api_key(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "bmd_live_" + self.s(32, ALNUM)
        if shape == 1:
            return "frl_" + self.s(40, ALNUM)
        return self.s(40, ALNUM)

    # ------------------------------------------------------------------ positives: signing secrets
    def t33_jwt_secret(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(64, ALNUM)
        if shape == 1:
            return self.t33_util_b64(48)
        if shape == 2:
            return self.s(64, HEX)
        return "bmd-jwt-" + self.s(40, URLSAFE)

    def t33_session_secret(self) -> str:
        return self.pick([self.s(48, HEX), self.t33_util_b64(36), self.s(50, ALNUM + "_-!")])

    def t33_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def t33_rails_skb(self) -> str:
        return self.s(128, HEX)

    def t33_laravel_key(self) -> str:
        return "base64:" + self.t33_util_b64(32)

    def t33_fernet(self) -> str:
        return self.t33_util_b64(32, urlsafe=True)

    def t33_wp_salt(self) -> str:
        return self.s(64, ALNUM + "!#$%&()*+,-./:;<=>?@[]^_`{|}~ ")

    def t33_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        if self.rng.randrange(2):
            header = part({"alg": "RS256", "kid": self.s(43, URLSAFE)})
            payload = part(
                {
                    "iss": "kubernetes/serviceaccount",
                    "kubernetes.io/serviceaccount/namespace": self.pick(["claims", "ci", "dwh"]),
                    "kubernetes.io/serviceaccount/service-account.name": self.pick(
                        ["argocd-manager", "claims-deployer", "ci-runner"]
                    ),
                    "sub": "system:serviceaccount:ci:" + self.pick(["deployer", "runner"]),
                }
            )
            sig = self.t33_util_b64(256, True, False)
        else:
            header = part({"alg": "HS256", "typ": "JWT"})
            payload = part(
                {
                    "sub": self.pick(self.users),
                    "aud": "broker-api.brightmoor.nl",
                    "iat": 1710000000 + self.rng.randrange(10**7),
                    "exp": 1893456000 + self.rng.randrange(10**7),
                    "scope": "quotes:write policies:read",
                }
            )
            sig = self.t33_util_b64(32, True, False)
        return f"{header}.{payload}.{sig}"

    # ------------------------------------------------------------------ positives: private keys
    def t33_rsa_pem(self) -> str:
        return self.t33_util_armor("RSA PRIVATE KEY", self.t33_util_rsa_der())

    def t33_pkcs8(self) -> str:
        der = _seq(b"\x02\x01\x00", _seq(OID_RSA), _tlv(0x04, self.t33_util_rsa_der()))
        return self.t33_util_armor("PRIVATE KEY", der)

    def t33_ec_pem(self) -> str:
        return self.t33_util_armor("EC PRIVATE KEY", self.t33_util_ec_der())

    def t33_p8_key(self) -> str:
        der = _seq(b"\x02\x01\x00", _seq(OID_EC, OID_P256), _tlv(0x04, self.t33_util_ec_der()))
        return self.t33_util_armor("PRIVATE KEY", der)

    def t33_openssh(self) -> str:
        pub = self.rng.randbytes(32)
        priv = self.rng.randbytes(32)
        pubblob = _sshstr(b"ssh-ed25519") + _sshstr(pub)
        check = self.rng.randbytes(4)
        comment = self.pick(["deploy@bmd-ci", "ansible@bastion-ams", "sftp-partner@bmd"]).encode()
        section = check + check + pubblob + _sshstr(priv + pub) + _sshstr(comment)
        pad = 1
        while len(section) % 8:
            section += bytes([pad])
            pad += 1
        blob = (
            b"openssh-key-v1\x00"
            + _sshstr(b"none")
            + _sshstr(b"none")
            + _sshstr(b"")
            + (1).to_bytes(4, "big")
            + _sshstr(pubblob)
            + _sshstr(section)
        )
        return self.t33_util_armor("OPENSSH PRIVATE KEY", blob, 70)

    # ------------------------------------------------------------------ negatives: hashes
    def t33_bcrypt(self) -> str:
        return (
            self.pick(["$2a$", "$2b$", "$2y$"])
            + self.pick(["10", "12"])
            + "$"
            + self.s(53, CRYPT64)
        )

    def t33_argon2(self) -> str:
        salt = self.t33_util_b64(16, pad=False)
        return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self.t33_util_b64(32, pad=False)}"

    def t33_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$870000${self.s(22, ALNUM)}${self.t33_util_b64(32)}"

    def t33_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def t33_cisco_hash(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"9 $9${self.s(14, CRYPT64)}${self.s(43, CRYPT64)}"
        if shape == 1:
            return f"8 $8${self.s(14, CRYPT64)}${self.s(43, CRYPT64)}"
        return f"5 $1${self.s(4, CRYPT64)}${self.s(22, CRYPT64)}"

    def t33_mysql_hash(self) -> str:
        return "*" + self.s(40, HEXU)

    def t33_scram(self) -> str:
        b = self.t33_util_b64
        return f"SCRAM-SHA-256$4096:{b(16)}${b(32)}:{b(32)}"

    def t33_apr1(self) -> str:
        if self.rng.randrange(2):
            return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"
        return "{SHA}" + self.t33_util_b64(20)

    def t33_aspnet_hash(self) -> str:
        head = bytes.fromhex("0100000002000186a000000010")
        return base64.b64encode(head + self.rng.randbytes(48)).decode()

    # ------------------------------------------------------------------ negatives: encrypted
    def t33_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 34, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t33_sops(self) -> str:
        data = self.t33_util_b64(self.rng.randrange(12, 40))
        iv = self.t33_util_b64(32)
        tag = self.t33_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def t33_sealed(self) -> str:
        return "AgB" + self.t33_util_b64(self.rng.randrange(400, 560))

    def t33_jasypt(self) -> str:
        return f"ENC({self.t33_util_b64(self.rng.randrange(24, 48))})"

    def t33_spring_cipher(self) -> str:
        return "{cipher}" + self.s(self.rng.choice([96, 128, 160]), HEX)

    def t33_kms_blob(self) -> str:
        return "AQICAHh" + self.t33_util_b64(self.rng.randrange(150, 200))

    def t33_vault_transit(self) -> str:
        return f"vault:v{self.rng.randrange(1, 4)}:" + self.t33_util_b64(self.rng.randrange(28, 60))

    def t33_fortigate_enc(self) -> str:
        return "ENC " + self.t33_util_b64(self.rng.randrange(90, 130))

    def t33_rails_enc(self) -> str:
        b = self.t33_util_b64
        return f"{b(self.rng.randrange(300, 600))}--{b(12)}--{b(16)}"

    def t33_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.t33_util_b64(36) + "}"

    def t33_enc_pem(self) -> str:
        if self.rng.randrange(2):
            params = _seq(
                _seq(
                    bytes.fromhex("06092a864886f70d01050c"), _seq(_tlv(0x04, self.rng.randbytes(8)))
                )
            )
            der = _seq(_seq(OID_PBES2, params), _tlv(0x04, self.rng.randbytes(1232)))
            return self.t33_util_armor("ENCRYPTED PRIVATE KEY", der)
        body = base64.b64encode(self.rng.randbytes(48 * 25)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            f"DEK-Info: AES-256-CBC,{self.s(32, HEXU)}\n\n"
            + "\n".join(rows)
            + "\n-----END RSA PRIVATE KEY-----"
        )

    # ------------------------------------------------------------------ negatives: public material
    def t33_public_pem(self) -> str:
        rsa_pub = _seq(self.t33_util_int(256), b"\x02\x03\x01\x00\x01")
        der = _seq(_seq(OID_RSA), _tlv(0x03, b"\x00" + rsa_pub))
        return self.t33_util_armor("PUBLIC KEY", der)

    def t33_cert(self) -> str:
        serial = _tlv(0x02, b"\x00" + self.rng.randbytes(16))
        tbs = _seq(
            _tlv(0xA0, b"\x02\x01\x02"),
            serial,
            _seq(OID_SHA256_RSA),
            _seq(self.rng.randbytes(110)),
            _seq(self.rng.randbytes(30)),
            _seq(self.rng.randbytes(120)),
            _seq(_seq(OID_RSA), _tlv(0x03, b"\x00" + self.rng.randbytes(270))),
            _tlv(0xA3, self.rng.randbytes(300)),
        )
        der = _seq(tbs, _seq(OID_SHA256_RSA), _tlv(0x03, b"\x00" + self.rng.randbytes(256)))
        return self.t33_util_armor("CERTIFICATE", der)

    def t33_ssh_pub(self) -> str:
        body = base64.b64encode(_sshstr(b"ssh-ed25519") + _sshstr(self.rng.randbytes(32))).decode()
        who = self.pick(["m.devries", "k.nowak", "a.jansen", "p.kowalski", "ansible", "deploy"])
        return f"ssh-ed25519 {body} {who}@brightmoor"

    def t33_jwk_n(self) -> str:
        return self.t33_util_b64(256, urlsafe=True, pad=False)

    def t33_pgp_pub(self) -> str:
        body = base64.b64encode(b"\x99\x01\x8d\x04" + self.rng.randbytes(48 * 9)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={self.t33_util_b64(3)}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def t33_age_pub(self) -> str:
        return "age1" + self.s(58, BECH32)

    # ------------------------------------------------------------------ negatives: references
    def t33_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["DJANGO_SECRET_KEY"]',
                'os.getenv("DJANGO_SECRET_KEY", "")',
                'env("DJANGO_SECRET_KEY")',
                'get_secret("quote-engine-secret-key")',
                'Path("/run/secrets/django_secret_key").read_text().strip()',
            ]
        )

    def t33_nb_ref(self) -> str:
        return self.pick(
            [
                'keyring.get_password(\\"snowflake\\", \\"FRAUD_ML\\")',
                'os.environ[\\"SNOWFLAKE_PASSWORD\\"]',
                'getpass.getpass(\\"Snowflake wachtwoord: \\")',
                'dbutils.secrets.get(scope=\\"fraud\\", key=\\"snowflake-password\\")',
            ]
        )

    def t33_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("QUOTE_DB_PASSWORD")',
                'viper.GetString("database.password")',
                "cfg.Database.Password",
                'mustEnv("QUOTE_DB_PASSWORD")',
            ]
        )

    def t33_spring_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${POLICY_DB_PASSWORD:}",
                "${vault.policy-api.db-password}",
                "${sm://policy-api-db-password}",
            ]
        )

    def t33_ruby_ref(self) -> str:
        return self.pick(
            [
                "<%= ENV['BROKER_PORTAL_DATABASE_PASSWORD'] %>",
                "<%= ENV.fetch('DB_PASSWORD') %>",
                "<%= Rails.application.credentials.dig(:db, :password) %>",
            ]
        )

    def t33_cs_ref(self) -> str:
        return self.pick(
            [
                "#{ClaimsSqlPassword}#",
                "__SQL_PASSWORD__",
                "$(ClaimsSqlPassword)",
                "{{SQL_PASSWORD}}",
            ]
        )

    def t33_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.AZURE_CLIENT_SECRET }}",
                "${{ secrets.AZ_SP_QUOTE_WEB_SECRET }}",
                "${{ secrets.ARM_CLIENT_SECRET }}",
            ]
        )

    def t33_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.db.password | b64enc }}",
                '{{ required "db.password is required" .Values.db.password | b64enc }}',
                "{{ .Values.secrets.sqlPassword | b64enc | quote }}",
            ]
        )

    def t33_tf_ref(self) -> str:
        return self.pick(
            [
                "random_password.policy_db.result",
                "var.azure_client_secret",
                "data.azurerm_key_vault_secret.sql_admin.value",
                "data.aws_secretsmanager_secret_version.rds.secret_string",
                "sensitive(var.datadog_api_key)",
            ]
        )

    def t33_ps_ref(self) -> str:
        return self.pick(
            [
                "(Get-Secret -Name DomainJoin -Vault BmdVault -AsPlainText)",
                "$env:DOMAIN_JOIN_PASSWORD",
                "(Get-AzKeyVaultSecret -VaultName kv-bmd-it -Name join-pw -AsPlainText)",
                "Read-Host -AsSecureString -Prompt 'Wachtwoord'",
            ]
        )

    def t33_sh_ref(self) -> str:
        return self.pick(
            [
                '"$(vault kv get -field=password secret/dwh/sqlserver)"',
                '"$(pass show dwh/sqlserver-etl)"',
                '"$(cat /run/secrets/dwh_password)"',
                '"$(op read op://DWH/sqlserver-etl/password)"',
                '"${ETL_LOADER_PASSWORD:?missing}"',
            ]
        )

    def t33_jinja_ref(self) -> str:
        return self.pick(
            [
                "\"{{ env_var('SNOWFLAKE_PASSWORD') }}\"",
                "\"{{ env_var('DBT_ENV_SECRET_SF_PASSWORD') }}\"",
                "\"{{ env_var('DBT_CI_PASSWORD') }}\"",
            ]
        )

    def t33_kv_ref(self) -> str:
        return self.pick(
            [
                "op://Callcentre/agent-desk-breakglass/password",
                "op://Callcentre/Agent Desk breakglass/wachtwoord",
                "vault:secret/data/callcentre/agent-desk#breakglass",
                "Bitwarden > Collection 'Callcentre' > Agent Desk breakglass",
            ]
        )

    def t33_gradle_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("BMD_STORE_PASSWORD")',
                'providers.gradleProperty("bmdKeystorePassword").get()',
                'keystoreProperties["storePassword"] as String',
                'System.getenv("ANDROID_KEYSTORE_PASSWORD") ?: ""',
            ]
        )

    def t33_r_ref(self) -> str:
        return self.pick(
            [
                'keyring::key_get("snowflake", "actuary_ro")',
                'Sys.getenv("ORACLE_PWD")',
                'rstudioapi::askForPassword("Oracle wachtwoord")',
                "config::get('dwh')$password",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def t33_placeholder(self) -> str:
        return self.pick(
            [
                "<wachtwoord>",
                "<hasło>",
                "vul-hier-je-api-sleutel-in",
                "wpisz-tutaj-klucz-api",
                "your-api-key-here",
                "changeme",
                "xxxxxxxxxxxxxxxxxxxxxxxx",
                "********",
                "<TWÓJ_TOKEN>",
                "JOUW_SLEUTEL_HIER",
                "REPLACE_ME",
                "<geheim>",
                "TU_WPISZ_HASLO",
            ]
        )

    def t33_redacted(self) -> str:
        return self.pick(
            [
                "********",
                "[REDACTED]",
                "<verwijderd>",
                "<usunięto>",
                "***gemaskeerd***",
                "[ukryte]",
                "••••••••",
            ]
        )

    def t33_doc_placeholder(self) -> str:
        return self.pick(
            [
                "YOUR_API_KEY",
                "<api-key>",
                "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                "live_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "$BMD_API_KEY",
                "{{apiKey}}",
                "<jouw-api-sleutel>",
                "<twój-klucz-api>",
                "AQE...",
            ]
        )

    def t33_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-secret",
                "test-token-do-not-use",
                "dummy",
                "nep-wachtwoord",
                "testowe-haslo",
                "unit-test-key-000000",
                "secret",
                "password123-fake",
            ]
        )

    def t33_example_uri(self) -> str:
        host = self.pick(
            [
                "db.example.com",
                "broker-api.example.org",
                "sftp.example.net",
                "mq.test",
                "dwh.invalid",
            ]
        )
        scheme = self.pick(["postgresql", "amqp", "sftp", "https", "mysql"])
        user = self.pick(["user", "gebruiker", "uzytkownik", "broker", "demo"])
        pw = self.pick(["password", "wachtwoord", "haslo", "secret", "s3cr3t", "P@ssw0rd"])
        return f"{scheme}://{user}:{pw}@{host}/"

    def t33_example_aws(self) -> str:
        key_id, secret = self.pick(
            [
                ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                ("AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"),
            ]
        )
        return f"export AWS_ACCESS_KEY_ID={key_id}\nexport AWS_SECRET_ACCESS_KEY={secret}"

    def t33_ui_text_pl(self) -> str:
        return self.pick(
            [
                "Nie pamiętasz hasła?",
                "Hasło musi mieć co najmniej 12 znaków, w tym cyfrę",
                "Hasła nie są zgodne",
                "Nieprawidłowy login lub hasło",
                "Twoja sesja wygasła, zaloguj się ponownie",
                "Ustaw nowe hasło",
            ]
        )

    # ------------------------------------------------------------------ negatives: identifiers
    def t33_git_sha(self) -> str:
        return self.s(40, HEX)

    def t33_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def t33_run_id(self) -> str:
        return self.s(32, HEX)

    def t33_image_digest(self) -> str:
        return "sha256:" + self.t33_sha256()

    def t33_sri(self) -> str:
        return "sha512-" + self.t33_util_b64(64)

    def t33_policy_no(self) -> str:
        country = self.pick(["NL", "PL"])
        line = self.pick(["AUT", "WON", "REI", "DIE", "MOT", "DOM"])
        return f"BMD-{country}-{line}-{self.rng.randrange(2019, 2026)}-{self.s(8, DIGITS)}"

    def t33_iban(self) -> str:
        if self.rng.randrange(2):
            bban = self.pick(["ABNA", "INGB", "RABO", "TRIO", "BUNQ"]) + self.s(10, DIGITS)
            country = "NL"
        else:
            bban = self.s(24, DIGITS)
            country = "PL"
        digits = "".join(str(int(c, 36)) for c in bban + country + "00")
        check = 98 - int(digits) % 97
        return f"{country}{check:02d}{bban}"

    def t33_twilio_sid(self) -> str:
        return "AC" + self.s(32, HEX)

    def t33_stripe_pk(self) -> str:
        return "pk_live_51" + self.s(97, ALNUM)

    def t33_mollie_id(self) -> str:
        return "tr_" + self.s(10, ALNUM)

    def t33_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def t33_cert_fpr(self) -> str:
        return ":".join(f"{b:02X}" for b in self.rng.randbytes(32))

    def t33_recaptcha_site(self) -> str:
        return "6L" + self.s(38, URLSAFE)

    def t33_apple_team(self) -> str:
        return self.s(10, UPNUM)

    def t33_ticket(self) -> str:
        return self.pick(
            [
                f"INC{self.s(7, DIGITS)}",
                f"CHG{self.s(7, DIGITS)}",
                f"BMD-{self.rng.randrange(100, 9999)}",
                f"OPS-{self.rng.randrange(100, 9999)}",
                f"ZGL-{self.rng.randrange(1000, 99999)}",
            ]
        )

    def t33_secret_arn(self) -> str:
        region = self.pick(["eu-central-1", "eu-west-1"])
        name = self.pick(["prod/ocr-worker/textract", "prod/quote-api/db", "dwh/snowflake"])
        return (
            f"arn:aws:secretsmanager:{region}:{self.s(12, DIGITS)}:secret:{name}-{self.s(6, ALNUM)}"
        )


VALUES = Tune33Values

TEMPLATES: list[evalset.Template] = []


def _t(path: str, text: str, kind: str, positive: bool) -> None:
    TEMPLATES.append((path, text, kind, positive))


# =============================================================================== quote and policy apps
_t(
    "quote-web/.env.production",
    """\
# quote-web (Next.js) - productie, NL + PL storefronts
NEXT_PUBLIC_SITE_URL=https://www.brightmoor.nl
NEXT_PUBLIC_PL_SITE_URL=https://www.brightmoor.pl
QUOTE_API_URL=http://quote-api.quote.svc.cluster.local:8080
MOLLIE_API_KEY={V}
MOLLIE_PROFILE_ID=pfl_QkEhN94Ba
MOLLIE_REDIRECT_URL=https://www.brightmoor.nl/betaling/bedankt
LOG_LEVEL=info
""",
    "t33_mollie",
    True,
)

_t(
    "policy-api/src/main/resources/application-prod.yml",
    """\
server:
  port: 8443
  ssl:
    enabled: true
    key-store: classpath:keystore/policy-api.p12
    key-store-type: PKCS12
spring:
  application:
    name: policy-api
  datasource:
    url: jdbc:postgresql://pg-policy-01.bmd.internal:5432/policy?ssl=true&sslmode=verify-full
    username: policy_svc
    password: "{V}"
    hikari:
      maximum-pool-size: 30
  rabbitmq:
    host: rabbit-cc.bmd.internal
    port: 5671
    username: policy_events
    password: "{V2}"
    ssl:
      enabled: true
  jpa:
    open-in-view: false
management:
  endpoints:
    web:
      exposure:
        include: health,info,prometheus
""",
    "t33_pw",
    True,
)

_t(
    "policy-api/src/main/resources/application.properties",
    """\
# Mail (polisbladen, bevestigingen) via SendGrid SMTP relay
spring.mail.host=smtp.sendgrid.net
spring.mail.port=587
spring.mail.username=apikey
spring.mail.password={V}
spring.mail.properties.mail.smtp.auth=true
spring.mail.properties.mail.smtp.starttls.enable=true
bmd.mail.from=polis@brightmoor.nl
bmd.mail.from-pl=polisa@brightmoor.pl
""",
    "t33_sendgrid",
    True,
)

_t(
    "quote-engine/quote_engine/settings/production.py",
    """\
from .base import *  # noqa: F401,F403

DEBUG = False
ALLOWED_HOSTS = ["quote-engine.bmd.internal", "premie.brightmoor.nl"]

# TODO(BMD-2291): move to Key Vault before the PL launch
SECRET_KEY = "{V}"

CSRF_TRUSTED_ORIGINS = ["https://www.brightmoor.nl", "https://www.brightmoor.pl"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

RATING_TABLES_BUCKET = "bmd-rating-tables-prod"
""",
    "t33_django_key",
    True,
)


_t(
    "broker-portal/config/secrets.yml",
    """\
# Be sure to restart your server when you modify this file.
development:
  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>

test:
  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>

production:
  secret_key_base: {V}
""",
    "t33_rails_skb",
    True,
)

_t(
    "customer-portal/.env",
    """\
APP_NAME="Mijn Brightmoor"
APP_ENV=production
APP_KEY={V}
APP_DEBUG=false
APP_URL=https://mijn.brightmoor.nl

LOG_CHANNEL=stack
DB_CONNECTION=pgsql
DB_HOST=pg-portal.bmd.internal
DB_PORT=5432
DB_DATABASE=customer_portal
DB_USERNAME=portal
DB_PASSWORD=${PORTAL_DB_PASSWORD}
""",
    "t33_laravel_key",
    True,
)

_t(
    "policy-docs-service/src/auth/tokens.ts",
    """\
import jwt from 'jsonwebtoken';
import type { PolicyDocumentClaims } from '../types';

// Signs short-lived download links for polisbladen / polisy PDF
const DOWNLOAD_LINK_SECRET = '{V}';

export function signDownloadLink(claims: PolicyDocumentClaims): string {
  return jwt.sign(claims, DOWNLOAD_LINK_SECRET, {
    algorithm: 'HS256',
    expiresIn: '15m',
    issuer: 'policy-docs.brightmoor.nl',
  });
}

export function verifyDownloadLink(token: string): PolicyDocumentClaims {
  return jwt.verify(token, DOWNLOAD_LINK_SECRET, { algorithms: ['HS256'] }) as PolicyDocumentClaims;
}
""",
    "t33_jwt_secret",
    True,
)

_t(
    "quote-api/internal/config/config.go",
    """\
package config

import (
	"os"
	"time"
)

type Config struct {
	ListenAddr   string
	DatabaseURL  string
	RatingCache  time.Duration
	PartnerQuota int
}

func Load() Config {
	dsn := os.Getenv("QUOTE_DATABASE_URL")
	if dsn == "" {
		// fallback for the pricing team's shared staging box
		dsn = "postgres://quote_api:{V}@pg-quote-stg.bmd.internal:5432/quotes?sslmode=require"
	}
	return Config{
		ListenAddr:   ":8080",
		DatabaseURL:  dsn,
		RatingCache:  10 * time.Minute,
		PartnerQuota: 600,
	}
}
""",
    "t33_url_pw",
    True,
)

_t(
    "claims-api/src/Bmd.Claims.Api/appsettings.Production.json",
    """\
{
  "Logging": {
    "LogLevel": {
      "Default": "Information",
      "Microsoft.AspNetCore": "Warning"
    }
  },
  "ConnectionStrings": {
    "ClaimsDb": "Server=tcp:sql-bmd-claims.database.windows.net,1433;Initial Catalog=claims;User ID=claims_api;Password={V};Encrypt=True;Connection Timeout=30;",
    "Redis": "redis-claims.redis.cache.windows.net:6380,password={V2},ssl=True,abortConnect=False"
  },
  "Ocr": {
    "Endpoint": "https://fr-bmd-claims.cognitiveservices.azure.com/",
    "Model": "prebuilt-invoice"
  },
  "AllowedHosts": "*"
}
""",
    "t33_pw",
    True,
)

_t(
    "claims-api/src/Bmd.Claims.Api/appsettings.json",
    """\
{
  "AzureAd": {
    "Instance": "https://login.microsoftonline.com/",
    "Domain": "brightmoor.onmicrosoft.com",
    "TenantId": "3c2b9f2e-5a41-4d7e-9a55-0f6c1d7e8b21",
    "ClientId": "b7e4a1c0-92d3-4f1e-8c6a-2d9e5f3a7b10",
    "ClientSecret": "{V}",
    "CallbackPath": "/signin-oidc"
  },
  "Claims": {
    "MaxUploadMb": 25,
    "AllowedTypes": [ "application/pdf", "image/jpeg", "image/png", "image/heic" ]
  }
}
""",
    "t33_azure_secret",
    True,
)

# =============================================================================== claims OCR and fraud
_t(
    "claims-ocr/worker/settings.py",
    """\
\"\"\"Settings for the claims OCR worker (schadeformulieren, faktury, rachunki).\"\"\"

import os

QUEUE_URL = os.getenv("OCR_QUEUE_URL", "amqps://rabbit-cc.bmd.internal:5671/claims")

# Azure AI Document Intelligence (Form Recognizer), West Europe
FORM_RECOGNIZER_ENDPOINT = "https://fr-bmd-claims.cognitiveservices.azure.com/"
FORM_RECOGNIZER_KEY = "{V}"
FORM_RECOGNIZER_MODEL = "prebuilt-invoice"

# second region for failover (PL traffic)
FORM_RECOGNIZER_ENDPOINT_PL = "https://fr-bmd-claims-plc.cognitiveservices.azure.com/"
FORM_RECOGNIZER_KEY_PL = "{V2}"

MAX_PAGES = 30
CONFIDENCE_THRESHOLD = 0.82
""",
    "t33_hex32",
    True,
)

_t(
    "claims-ocr/deploy/textract/credentials",
    """\
# textract-ocr IAM user (account bmd-claims-prod), created 2024-02-12 by j.vandenberg
[default]
region = eu-central-1

[textract-ocr]
{V}
region = eu-central-1
""",
    "t33_aws_pair_ini",
    True,
)

_t(
    "claims-ocr/worker/vision_fallback.py",
    """\
import base64

import requests

VISION_URL = "https://vision.googleapis.com/v1/images:annotate"
API_KEY = "{V}"


def ocr_photo(image_bytes: bytes, lang_hints: list[str] | None = None) -> str:
    body = {
        "requests": [
            {
                "image": {"content": base64.b64encode(image_bytes).decode()},
                "features": [{"type": "DOCUMENT_TEXT_DETECTION"}],
                "imageContext": {"languageHints": lang_hints or ["nl", "pl", "en"]},
            }
        ]
    }
    resp = requests.post(VISION_URL, params={"key": API_KEY}, json=body, timeout=30)
    resp.raise_for_status()
    return resp.json()["responses"][0].get("fullTextAnnotation", {}).get("text", "")
""",
    "t33_google_api",
    True,
)

_t(
    "claims-ocr/docker-compose.yml",
    """\
services:
  minio:
    image: minio/minio:RELEASE.2024-05-10T01-41-38Z
    command: server /data --console-address ":9001"
    environment:
      MINIO_ROOT_USER: claims-admin
      MINIO_ROOT_PASSWORD: "{V}"
    ports:
      - "9000:9000"
      - "9001:9001"
    volumes:
      - claims-docs:/data

  ocr-worker:
    build: ./worker
    depends_on: [minio]
    environment:
      S3_ENDPOINT: http://minio:9000
      S3_ACCESS_KEY: ocr-worker
      S3_SECRET_KEY: "{V2}"
      S3_BUCKET: schadeclaims-inbox

volumes:
  claims-docs:
""",
    "t33_pw",
    True,
)

_t(
    "fraud-models/notebooks/01_extract_training_set.ipynb",
    """\
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": [
    "# Fraude-model v7: trainingsset\\n",
    "Claims 2021-2024, NL + PL motor and home. Labels from SIU outcomes."
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import snowflake.connector\\n",
    "import pandas as pd\\n",
    "\\n",
    "conn = snowflake.connector.connect(\\n",
    "    account=\\"bmd-eu_central_1\\",\\n",
    "    user=\\"FRAUD_ML\\",\\n",
    "    password=\\"{V}\\",\\n",
    "    warehouse=\\"DS_WH\\",\\n",
    "    database=\\"CLAIMS\\",\\n",
    "    schema=\\"MART\\",\\n",
    ")\\n",
    "df = pd.read_sql(open(\\"sql/training_set.sql\\").read(), conn)\\n",
    "df.shape"
   ]
  }
 ],
 "metadata": {
  "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
  "language_info": {"name": "python", "version": "3.11.8"}
 },
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    "t33_pw",
    True,
)

_t(
    "fraud-models/.databrickscfg",
    """\
[DEFAULT]
host  = https://adb-4417290318823711.11.azuredatabricks.net
token = {V}

[fraud-staging]
host  = https://adb-7702991028317465.5.azuredatabricks.net
token = {V2}
jobs-api-version = 2.1
""",
    "t33_databricks",
    True,
)


_t(
    "fraud-scoring/src/main/kotlin/nl/brightmoor/fraud/FraudlineClient.kt",
    """\
package nl.brightmoor.fraud

import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse

class FraudlineClient(private val http: HttpClient = HttpClient.newHttpClient()) {
    private val baseUrl = "https://api.fraudline.eu/v3"
    private val apiKey = "{V}"

    fun score(claimJson: String): String {
        val request = HttpRequest.newBuilder(URI.create("$baseUrl/claims/score"))
            .header("Content-Type", "application/json")
            .header("X-Api-Key", apiKey)
            .POST(HttpRequest.BodyPublishers.ofString(claimJson))
            .build()
        return http.send(request, HttpResponse.BodyHandlers.ofString()).body()
    }
}
""",
    "t33_api_key",
    True,
)

_t(
    "claims-genai/summarise.py",
    """\
\"\"\"Samenvatting van schadedossiers voor behandelaars (pilot, alleen NL motor).\"\"\"

import anthropic

client = anthropic.Anthropic(api_key="{V}")

PROMPT = (
    "Je bent een schadebehandelaar. Vat het dossier samen in maximaal 8 bullets, "
    "noem ontbrekende documenten en eventuele fraude-indicatoren."
)


def summarise(dossier_text: str) -> str:
    msg = client.messages.create(
        model="claude-3-5-sonnet-latest",
        max_tokens=800,
        system=PROMPT,
        messages=[{"role": "user", "content": dossier_text}],
    )
    return msg.content[0].text
""",
    "t33_anthropic",
    True,
)


# =============================================================================== actuarial
_t(
    "actuarial/R/connect_dwh.R",
    """\
# Verbinding met het DWH voor reserveringsmodellen (chain ladder, Mack)
library(DBI)
library(odbc)

con <- dbConnect(
  odbc::odbc(),
  Driver   = "Oracle in OraClient19Home1",
  DBQ      = "dwh-ora.bmd.internal:1521/DWHPRD",
  UID      = "ACTUARY_RO",
  PWD      = "{V}",
  timeout  = 20
)

triangles <- dbGetQuery(con, "SELECT * FROM ACT.CLAIMS_TRIANGLE_MOTOR WHERE COUNTRY = 'NL'")
""",
    "t33_pw",
    True,
)

_t(
    "actuarial/sas/autoexec.sas",
    """\
/* autoexec voor de actuariele SAS-omgeving */
options compress=yes fullstimer;

libname dwh oracle user=act_batch password="{V}" path="DWHPRD" schema=ACT;
libname pricing "/sasdata/pricing/2025";

%let reserving_date = 31DEC2024;
""",
    "t33_pw",
    True,
)

# =============================================================================== partner and broker APIs
_t(
    "broker-gateway/kong/kong.yml",
    """\
_format_version: "3.0"
services:
  - name: broker-quotes
    url: http://quote-api.quote.svc.cluster.local:8080
    routes:
      - name: broker-quotes
        paths: [/broker/v1/quotes]
    plugins:
      - name: key-auth
        config:
          key_names: [x-api-key]
      - name: rate-limiting
        config:
          minute: 600
consumers:
  - username: independer
    keyauth_credentials:
      - key: {V}
  - username: rankomat
    keyauth_credentials:
      - key: {V2}
  - username: mona-assurantien
    keyauth_credentials:
      - key: {V3}
""",
    "t33_api_key",
    True,
)

_t(
    "partner-integrations/comparators/independer/client.py",
    """\
import requests

TOKEN_URL = "https://auth.independer.nl/connect/token"
CLIENT_ID = "brightmoor-quotes"
CLIENT_SECRET = "{V}"


def get_token() -> str:
    resp = requests.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "offers.write",
        },
        timeout=15,
    )
    resp.raise_for_status()
    return resp.json()["access_token"]
""",
    "t33_oauth_secret",
    True,
)

_t(
    "broker-gateway/internal/webhook/sign.go",
    """\
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Shared secret with Rankomat.pl for the "oferta" callbacks (agreed 2024-09, see ZGL-4471).
var rankomatSecret = []byte("{V}")

func Sign(body []byte) string {
	mac := hmac.New(sha256.New, rankomatSecret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func Verify(body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(body)), []byte(signature))
}
""",
    "t33_hex64",
    True,
)

_t(
    "partner-integrations/http/broker-api.http",
    """\
### Quote opvragen als tussenpersoon (productie!)
POST https://api.brightmoor.nl/broker/v1/quotes
Authorization: Bearer {V}
Content-Type: application/json

{
  "product": "motor",
  "licensePlate": "XK-123-B",
  "postcode": "3511AB",
  "birthDate": "1988-04-12"
}

### Polis ophalen
GET https://api.brightmoor.nl/broker/v1/policies?status=active
Authorization: Bearer {V}
""",
    "t33_jwt",
    True,
)

_t(
    "partner-integrations/scripts/smoke_broker.sh",
    """\
#!/bin/sh
# nightly smoke test against the legacy SOAP broker endpoint (basic auth)
curl -fsS https://soap.brightmoor.nl/BrokerService.svc \\
  -H "Content-Type: text/xml; charset=utf-8" \\
  -H "SOAPAction: urn:bmd:broker/GetQuote" \\
  -H "Authorization: Basic {V}" \\
  --data @requests/get_quote_motor.xml -o /tmp/broker_quote.xml
grep -q "<QuoteId>" /tmp/broker_quote.xml
""",
    "t33_basic_b64",
    True,
)

# =============================================================================== payments
_t(
    "payments-service/config/adyen.yaml",
    """\
adyen:
  environment: LIVE
  live-endpoint-url-prefix: 1797a841fbb37ca7-BrightmoorDirect
  merchant-account: BrightmoorDirectNL
  api-key: "{V}"
  hmac-keys:
    standard-notifications: ${ADYEN_HMAC_KEY}
  payment-methods:
    - ideal
    - scheme
    - applepay
""",
    "t33_adyen_key",
    True,
)

_t(
    "payments-service/src/webhooks/stripe.ts",
    """\
import Stripe from 'stripe';
import type { Request, Response } from 'express';

const stripe = new Stripe(process.env.STRIPE_SECRET_KEY as string, { apiVersion: '2024-06-20' });
const endpointSecret = '{V}';

export async function stripeWebhook(req: Request, res: Response) {
  const sig = req.headers['stripe-signature'] as string;
  let event: Stripe.Event;
  try {
    event = stripe.webhooks.constructEvent(req.body, sig, endpointSecret);
  } catch (err) {
    return res.status(400).send(`Webhook Error: ${(err as Error).message}`);
  }
  if (event.type === 'invoice.paid') {
    // premie ontvangen -> polis actief
  }
  res.json({ received: true });
}
""",
    "t33_stripe_whsec",
    True,
)

_t(
    "payments-service/.env.production",
    """\
NODE_ENV=production
PORT=3000
STRIPE_SECRET_KEY={V}
# STRIPE_SECRET_KEY={V2}   <- oude sleutel, nog actief voor de NL-incasso tot migratie klaar is
STRIPE_API_VERSION=2024-06-20
DEFAULT_CURRENCY=EUR
SENTRY_ENVIRONMENT=production
""",
    "t33_stripe_sk",
    True,
)

_t(
    "payments-pl/src/main/resources/payu.properties",
    """\
# PayU (Polska) - konfiguracja produkcyjna
payu.environment=secure
payu.pos.id=4287719
payu.oauth.client.id=4287719
payu.oauth.client.secret={V}
payu.second.key={V2}
payu.notify.url=https://platnosci.brightmoor.pl/payu/notify
payu.currency=PLN
""",
    "t33_hex32",
    True,
)

_t(
    "payments-pl/przelewy24/config.php",
    """\
<?php
// Przelewy24 - dane produkcyjne (konto Brightmoor Ubezpieczenia Sp. z o.o.)
return [
    'merchant_id' => 214887,
    'pos_id'      => 214887,
    'crc'         => '{V}',
    'sandbox'     => false,
    'url_return'  => 'https://www.brightmoor.pl/platnosc/dziekujemy',
    'url_status'  => 'https://platnosci.brightmoor.pl/p24/status',
];
""",
    "t33_hex16",
    True,
)


_t(
    "finance/reconciliation/mollie_settlements.py",
    """\
\"\"\"Dagelijkse afletteren van Mollie settlements tegen het grootboek (Exact Online).\"\"\"

from mollie.api.client import Client

mollie = Client()
mollie.set_access_token("{V}")


def settlements(since: str):
    for settlement in mollie.settlements.list(from_=since):
        yield settlement["id"], settlement["amount"]["value"], settlement["settledAt"]
""",
    "t33_mollie_access",
    True,
)

_t(
    "finance/exports/stripe_disputes.rb",
    """\
require "stripe"
require "csv"

# Restricted key: read-only on disputes and charges (finance exports)
Stripe.api_key = "{V}"

CSV.open("disputes_#{Date.today}.csv", "w") do |csv|
  csv << %w[id amount reason status created]
  Stripe::Dispute.list(limit: 100).auto_paging_each do |d|
    csv << [d.id, d.amount, d.reason, d.status, Time.at(d.created).utc.iso8601]
  end
end
""",
    "t33_stripe_rk",
    True,
)

# =============================================================================== call centre
_t(
    "callcentre/asterisk/pjsip_trunks.conf",
    """\
; SIP trunks klantenservice (Amersfoort) en biuro obslugi klienta (Krakow)
[transport-tls]
type=transport
protocol=tls
bind=0.0.0.0:5061

[kpn-trunk-auth]
type=auth
auth_type=userpass
username=0334567890
password={V}

[kpn-trunk]
type=endpoint
context=from-kpn
outbound_auth=kpn-trunk-auth
aors=kpn-trunk
disallow=all
allow=alaw,g722

[orange-pl-auth]
type=auth
auth_type=userpass
username=48123456700
password={V2}
""",
    "t33_sip_secret",
    True,
)

_t(
    "callcentre/genesys/export_queue_stats.py",
    """\
import PureCloudPlatformClientV2 as gc

REGION = gc.PureCloudRegionHosts.eu_central_1
CLIENT_ID = "6b1f0b34-7c5e-4c39-9b0f-0a2d1e6e4c11"
CLIENT_SECRET = "{V}"

gc.configuration.host = REGION.get_api_host()
api_client = gc.api_client.ApiClient().get_client_credentials_token(CLIENT_ID, CLIENT_SECRET)
analytics = gc.AnalyticsApi(api_client)

QUEUES = {"Schade NL": "schade-nl", "Szkody PL": "szkody-pl", "Sales NL": "verkoop-nl"}
""",
    "t33_genesys_secret",
    True,
)

_t(
    "callcentre/ivr/.env",
    """\
# Twilio IVR (terugbelverzoeken / oddzwanianie)
TWILIO_ACCOUNT_SID=${TWILIO_ACCOUNT_SID}
TWILIO_AUTH_TOKEN={V}
TWILIO_NUMBER_NL=+3188000000
TWILIO_NUMBER_PL=+48220000000
IVR_LANGS=nl,pl,en
""",
    "t33_twilio_token",
    True,
)


_t(
    "notifications/sms/messagebird.go",
    """\
package sms

import (
	messagebird "github.com/messagebird/go-rest-api/v9"
	"github.com/messagebird/go-rest-api/v9/sms"
)

const accessKey = "{V}"

func SendNL(to, body string) error {
	client := messagebird.New(accessKey)
	_, err := sms.Create(client, "Brightmoor", []string{to}, body, nil)
	return err
}
""",
    "t33_messagebird",
    True,
)

_t(
    "notifications/sms/smsapi_pl.py",
    """\
from smsapi.client import SmsApiPlClient

# token OAuth z panelu SMSAPI (konto: powiadomienia@brightmoor.pl)
client = SmsApiPlClient(access_token="{V}")


def wyslij(numer: str, tresc: str) -> None:
    client.sms.send(to=numer, message=tresc, from_="Brightmoor")
""",
    "t33_smsapi",
    True,
)

# =============================================================================== mobile apps
_t(
    "mobile/android/keystore.properties",
    """\
storeFile=../keys/brightmoor-release.jks
storePassword={V}
keyAlias=brightmoor
keyPassword={V2}
""",
    "t33_pw",
    True,
)


_t(
    "mobile/ios/fastlane/keys/AuthKey_7QK2M9XRC4.p8",
    """\
{V}
""",
    "t33_p8_key",
    True,
)

_t(
    "push-service/src/fcm.js",
    """\
const axios = require('axios');

// legacy HTTP API, to be migrated to HTTP v1 (BMD-3310)
const FCM_SERVER_KEY = '{V}';

async function sendPush(deviceToken, title, body) {
  return axios.post(
    'https://fcm.googleapis.com/fcm/send',
    { to: deviceToken, notification: { title, body }, priority: 'high' },
    { headers: { Authorization: `key=${FCM_SERVER_KEY}`, 'Content-Type': 'application/json' } },
  );
}

module.exports = { sendPush };
""",
    "t33_firebase_key",
    True,
)

_t(
    "mobile/android/gradle.properties",
    """\
org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
android.useAndroidX=true
kotlin.code.style=official
# Mapbox Navigation SDK download token (scope DOWNLOADS:READ) for the schade-melden map
MAPBOX_DOWNLOADS_TOKEN={V}
""",
    "t33_mapbox_sk",
    True,
)


_t(
    "mobile/ios/Brightmoor/Config/AppSecrets.swift",
    """\
import Foundation

enum AppSecrets {
    // HMAC key for signing photo uploads to claims-api (see claims-api/Signing.cs)
    static let uploadSigningKey = "{V}"
    static let uploadKeyVersion = 3
}
""",
    "t33_hex64",
    True,
)

# =============================================================================== DWH and ETL
_t(
    "dwh/dbt/profiles.yml",
    """\
brightmoor_dwh:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: bmd-eu_central_1
      user: DBT_PROD
      password: "{V}"
      role: TRANSFORMER
      warehouse: TRANSFORM_WH
      database: ANALYTICS
      schema: MARTS
      threads: 8
""",
    "t33_pw",
    True,
)

_t(
    "dwh/airflow/airflow.cfg",
    """\
[core]
dags_folder = /opt/airflow/dags
executor = CeleryExecutor
load_examples = False
fernet_key = {V}

[webserver]
base_url = https://airflow.dwh.bmd.internal
expose_config = False
""",
    "t33_fernet",
    True,
)

_t(
    "dwh/airflow/connections.env",
    """\
AIRFLOW_CONN_POLICY_DB={V}
AIRFLOW_CONN_CLAIMS_DB={V2}
AIRFLOW_CONN_CRM_DB={V3}
AIRFLOW__CORE__DEFAULT_TIMEZONE=Europe/Amsterdam
""",
    "t33_db_uri",
    True,
)


_t(
    "dwh/kafka/client-prod.properties",
    """\
bootstrap.servers=pkc-z9doz.europe-west3.gcp.confluent.cloud:9092
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config={V}
client.dns.lookup=use_all_dns_ips
session.timeout.ms=45000
acks=all
""",
    "t33_confluent_jaas",
    True,
)

_t(
    "dwh/sql/020_create_etl_logins.sql",
    """\
-- Logins voor de ETL-servicelaag (SQL Server DWH)
USE [master];
GO
CREATE LOGIN [etl_loader] WITH PASSWORD = N'{V}', CHECK_POLICY = ON;
GO
CREATE LOGIN [etl_reader] WITH PASSWORD = N'{V2}', CHECK_POLICY = ON;
GO
USE [DWH];
CREATE USER [etl_loader] FOR LOGIN [etl_loader];
ALTER ROLE [db_datawriter] ADD MEMBER [etl_loader];
CREATE USER [etl_reader] FOR LOGIN [etl_reader];
ALTER ROLE [db_datareader] ADD MEMBER [etl_reader];
GO
""",
    "t33_pw",
    True,
)

_t(
    "dwh/scripts/load_claims_snapshot.bat",
    r"""@echo off
REM Nachtelijke snapshot van Claims naar DWH staging
set SQLSERVER=sql-dwh01.bmd.local
sqlcmd -S %SQLSERVER% -U sa -P {V} -d DWH_STAGING -i D:\etl\sql\claims_snapshot.sql -o D:\etl\logs\claims_%DATE:~-4%%DATE:~3,2%%DATE:~0,2%.log
if errorlevel 1 exit /b 1
""",
    "t33_pw",
    True,
)

_t(
    "dwh/scripts/export_crm.sh",
    """\
#!/usr/bin/env bash
set -euo pipefail
OUT=/data/exports/crm_$(date +%F).sql.gz
mysqldump -h mysql-crm.bmd.internal -u {V} -p{V} --single-transaction crm | gzip > "$OUT"
aws s3 cp "$OUT" s3://bmd-dwh-landing/crm/
""",
    "t33_user_eq_pw",
    True,
)

_t(
    "dwh/oracle/refresh_mviews.sh",
    """\
#!/bin/bash
# cron: 15 2 * * *  (ora-dwh01)
export ORACLE_SID=DWHPRD
sqlplus -s /nolog <<EOF
CONNECT act_batch/{V}@DWHPRD
EXEC DBMS_MVIEW.REFRESH('ACT.MV_CLAIMS_TRIANGLE', 'C');
EXEC DBMS_MVIEW.REFRESH('ACT.MV_EXPOSURE_MOTOR', 'C');
EXIT;
EOF
""",
    "t33_pw",
    True,
)

_t(
    "dwh/spark/jobs/claims_to_lake.scala",
    """\
import org.apache.spark.sql.SparkSession

object ClaimsToLake {
  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder.appName("claims-to-lake").getOrCreate()
    spark.conf.set(
      "fs.azure.account.key.stbmddwh001.dfs.core.windows.net",
      "{V}"
    )
    val claims = spark.read.format("jdbc").option("url", args(0)).option("dbtable", "dbo.Claims").load()
    claims.write.mode("overwrite").parquet("abfss://lake@stbmddwh001.dfs.core.windows.net/raw/claims")
  }
}
""",
    "t33_azure_key88",
    True,
)


# =============================================================================== IT infrastructure
_t(
    "infra/network/ams-core-sw01.cfg",
    """\
!
hostname ams-core-sw01
!
aaa new-model
aaa authentication login default group tacacs+ local
!
username netadmin privilege 15 password 0 {V}
!
ip domain name bmd.local
!
snmp-server community {V2} RO SNMP-MGMT
snmp-server location Amersfoort DC1 rack B07
!
tacacs server ISE-AMS
 address ipv4 10.10.5.20
 key 0 {V3}
!
line vty 0 15
 transport input ssh
!
end
""",
    "t33_net_secret",
    True,
)

_t(
    "infra/network/fw-krk01-ipsec.conf",
    """\
config vpn ipsec phase1-interface
    edit "to-ams-dc1"
        set interface "wan1"
        set ike-version 2
        set peertype any
        set net-device disable
        set proposal aes256gcm-prfsha384
        set dhgrp 20
        set remote-gw 145.132.10.4
        set psksecret {V}
    next
end
""",
    "t33_psk",
    True,
)


_t(
    "legacy/policy-admin/tomcat/conf/tomcat-users.xml",
    """\
<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <role rolename="manager-gui"/>
  <role rolename="manager-script"/>
  <user username="admin" password="{V}" roles="manager-gui"/>
  <user username="deployer" password="{V2}" roles="manager-script"/>
</tomcat-users>
""",
    "t33_vendor_default",
    True,
)

_t(
    "infra/windows/Join-Domain.ps1",
    """\
# Join new call centre workstations to BMD.LOCAL
param([string]$OU = "OU=Callcentre,OU=Workstations,DC=bmd,DC=local")

$user = "BMD\\svc-domainjoin"
$pass = ConvertTo-SecureString "{V}" -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($user, $pass)

Add-Computer -DomainName "bmd.local" -OUPath $OU -Credential $cred -Restart -Force
""",
    "t33_pw",
    True,
)


_t(
    "infra/ansible/inventory/legacy.ini",
    """\
[crm_legacy]
crm-app01.bmd.local
crm-app02.bmd.local

[crm_legacy:vars]
ansible_user=Administrator
ansible_password={V}
ansible_connection=winrm
ansible_winrm_transport=ntlm
""",
    "t33_weak_pw",
    True,
)


_t(
    "infra/vpn/consultant-pieter.ovpn",
    """\
client
dev tun
proto udp
remote vpn.brightmoor.nl 1194
resolv-retry infinite
nobind
remote-cert-tls server
cipher AES-256-GCM
verb 3
<key>
{V}
</key>
""",
    "t33_rsa_pem",
    True,
)

_t(
    "infra/sftp/partner_keys/id_ed25519_rankomat",
    """\
{V}
""",
    "t33_openssh",
    True,
)

_t(
    "infra/tls/star.brightmoor.pl.key",
    """\
{V}
""",
    "t33_pkcs8",
    True,
)

# =============================================================================== cloud and Kubernetes
_t(
    "charts/policy-api/values-prod.yaml",
    """\
replicaCount: 4
image:
  repository: registry.brightmoor.com/policy/policy-api
  tag: "5.18.2"
ingress:
  enabled: true
  host: policy-api.brightmoor.nl
tls:
  # cert comes from cert-manager; the key is pinned for the mTLS partner channel
  certSecretName: policy-api-mtls
  key: |
    {IV}
""",
    "t33_ec_pem",
    True,
)

_t(
    "k8s/claims/claims-api-secret.yaml",
    """\
apiVersion: v1
kind: Secret
metadata:
  name: claims-api
  namespace: claims
type: Opaque
stringData:
  SQL_PASSWORD: "{V}"
  REDIS_PASSWORD: "{V2}"
  OCR_CALLBACK_TOKEN: "{V3}"
""",
    "t33_pw",
    True,
)

_t(
    "k8s/quote/quote-db-secret.yaml",
    """\
apiVersion: v1
kind: Secret
metadata:
  name: quote-db
  namespace: quote
  labels:
    app.kubernetes.io/part-of: quote
type: Opaque
data:
  username: cXVvdGVfYXBp
  password: {V}
""",
    "t33_b64_pw",
    True,
)

_t(
    "k8s/ocr/regcred.yaml",
    """\
apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: ocr
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: |
    {"auths":{"registry.brightmoor.com":{"auth":"{V}"}}}
""",
    "t33_basic_b64",
    True,
)

_t(
    "k8s/argocd/repo-gitlab-claims.yaml",
    """\
apiVersion: v1
kind: Secret
metadata:
  name: repo-claims
  namespace: argocd
  labels:
    argocd.argoproj.io/secret-type: repository
stringData:
  type: git
  url: https://gitlab.brightmoor.com/claims/claims-deploy.git
  username: argocd-claims
  password: {V}
""",
    "t33_gldt",
    True,
)

_t(
    "ops/kubeconfig-ci.yaml",
    """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://aks-bmd-prod-weu.hcp.westeurope.azmk8s.io:443
    certificate-authority: /etc/ci/aks-bmd-prod-ca.crt
  name: aks-bmd-prod
contexts:
- context:
    cluster: aks-bmd-prod
    user: ci-deployer
  name: prod
current-context: prod
users:
- name: ci-deployer
  user:
    token: {V}
""",
    "t33_jwt",
    True,
)

_t(
    "infra/terraform/aws/rds.tf",
    """\
resource "aws_db_instance" "ocr_results" {
  identifier              = "ocr-results-prod"
  engine                  = "postgres"
  engine_version          = "16.3"
  instance_class          = "db.r6g.large"
  allocated_storage       = 200
  username                = "ocr_admin"
  password                = "{V}"
  db_subnet_group_name    = aws_db_subnet_group.private.name
  backup_retention_period = 14
  deletion_protection     = true
  storage_encrypted       = true
}
""",
    "t33_pw",
    True,
)

_t(
    "infra/terraform/azure/providers.tf",
    """\
provider "azurerm" {
  features {}
  subscription_id = "9f4c1e2a-6d3b-4b8e-a1f0-5c7d2e9b3a61"
  tenant_id       = "3c2b9f2e-5a41-4d7e-9a55-0f6c1d7e8b21"
  client_id       = "0e8f2b1c-4a6d-4c3e-9b7a-8d1f5e2c6a90"
  client_secret   = "{V}"
}
""",
    "t33_azure_secret",
    True,
)


_t(
    "ops/terraformrc-buildagent",
    """\
credentials "app.terraform.io" {
  token = "{V}"
}

plugin_cache_dir = "/opt/terraform/plugin-cache"
""",
    "t33_tfc_token",
    True,
)

_t(
    "infra/gcp/sa-actuarial-bq.json",
    """\
{
  "type": "service_account",
  "project_id": "bmd-actuarial",
  "private_key": "{V}",
  "client_email": "bq-reserving@bmd-actuarial.iam.gserviceaccount.com",
  "client_id": "104822917336410293871",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "universe_domain": "googleapis.com"
}
""",
    "t33_gcp_pk_escaped",
    True,
)

_t(
    "claims-ocr/lambda/.env.deploy",
    """\
# serverless deploy of the textract-callback lambda
{V}
AWS_REGION=eu-central-1
STAGE=prod
""",
    "t33_aws_pair_env",
    True,
)

_t(
    "claims-ocr/functions/local.settings.json",
    """\
{
  "IsEncrypted": false,
  "Values": {
    "FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated",
    "AzureWebJobsStorage": "{V}",
    "ClaimsInboxStorage": "{V2}",
    "OcrQueueName": "claims-ocr-inbox"
  }
}
""",
    "t33_azure_storage",
    True,
)

_t(
    "ops/scripts/vault-bootstrap.sh",
    """\
#!/usr/bin/env bash
# bootstrap policies after the Vault cluster rebuild (2025-01-14)
export VAULT_ADDR=https://vault.bmd.internal:8200
export VAULT_TOKEN={V}
vault policy write claims-api policies/claims-api.hcl
vault policy write dwh-etl policies/dwh-etl.hcl
vault secrets enable -path=secret kv-v2 || true
""",
    "t33_vault_token",
    True,
)

_t(
    "infra/sops/keys.txt",
    """\
# created: 2024-06-03T09:12:44+02:00
# public key: age1x3w0c9ru6qv2s7e6hd6u5tpj8v4ze5fgklh4qz2mfqz7r8xgkdsqd4h7rv
{V}
""",
    "t33_age_key",
    True,
)


# =============================================================================== CI/CD and registries
_t(
    "quote-web/.npmrc",
    """\
@brightmoor:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
engine-strict=true
save-exact=true
""",
    "t33_npm",
    True,
)

_t(
    "policy-api/scripts/release.sh",
    """\
#!/usr/bin/env bash
# Cut a release of policy-api and publish notes (run by hand from the release laptop)
set -euo pipefail
VERSION="$1"
GITHUB_TOKEN={V}
git tag -a "v$VERSION" -m "policy-api $VERSION"
git push origin "v$VERSION"
curl -fsS -X POST \\
  -H "Authorization: token $GITHUB_TOKEN" \\
  -H "Accept: application/vnd.github+json" \\
  https://api.github.com/repos/brightmoor/policy-api/releases \\
  -d "{\\"tag_name\\": \\"v$VERSION\\", \\"generate_release_notes\\": true}"
""",
    "t33_github",
    True,
)

_t(
    "ops/gitlab-runner/config.toml",
    """\
concurrent = 8
check_interval = 0

[session_server]
  session_timeout = 1800

[[runners]]
  name = "bmd-k8s-runner-ams"
  url = "https://gitlab.brightmoor.com/"
  id = 214
  token = "{V}"
  executor = "kubernetes"
  [runners.kubernetes]
    namespace = "gitlab-ci"
    privileged = false
    cpu_request = "500m"
    memory_request = "1Gi"
""",
    "t33_glrt",
    True,
)

_t(
    "ops/renovate/config.js",
    """\
module.exports = {
  platform: 'gitlab',
  endpoint: 'https://gitlab.brightmoor.com/api/v4/',
  autodiscover: true,
  autodiscoverFilter: ['claims/*', 'quote/*', 'policy/*'],
  hostRules: [
    {
      matchHost: 'api.github.com',
      token: '{V}',
    },
  ],
  onboardingConfig: { extends: ['config:recommended'] },
};
""",
    "t33_github_fine",
    True,
)

_t(
    ".github/workflows/quality.yml",
    """\
name: quality
on:
  pull_request:
  push:
    branches: [main]
jobs:
  sonar:
    runs-on: ubuntu-latest
    env:
      SONAR_HOST_URL: https://sonar.brightmoor.com
      SONAR_TOKEN: {V}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: actions/setup-java@v4
        with:
          distribution: temurin
          java-version: "21"
      - run: ./mvnw -B verify sonar:sonar -Dsonar.projectKey=policy-api
""",
    "t33_sonar",
    True,
)

_t(
    "claims-ocr/.gitlab-ci.yml",
    """\
stages: [build, deploy]

variables:
  IMAGE: docker.io/brightmoor/claims-ocr-worker

build:
  stage: build
  image: docker:27
  services: [docker:27-dind]
  script:
    - echo "{V}" | docker login -u brightmoorci --password-stdin
    - docker build -t "$IMAGE:$CI_COMMIT_SHORT_SHA" worker/
    - docker push "$IMAGE:$CI_COMMIT_SHORT_SHA"
""",
    "t33_docker_pat",
    True,
)

_t(
    "dwh/Jenkinsfile",
    """\
pipeline {
    agent { label 'linux-dwh' }
    environment {
        JFROG_URL = 'https://brightmoor.jfrog.io'
    }
    stages {
        stage('Package') {
            steps {
                sh 'mvn -B -q package -DskipTests'
            }
        }
        stage('Publish') {
            steps {
                sh "jf rt upload --url ${JFROG_URL}/artifactory --access-token {V} target/dwh-loader-*.jar libs-release-local/dwh/"
            }
        }
    }
}
""",
    "t33_jfrog_ref",
    True,
)

_t(
    "claims-api/azure-pipelines.yml",
    """\
trigger:
  branches:
    include: [main]

pool:
  vmImage: windows-latest

steps:
  - task: DotNetCoreCLI@2
    inputs:
      command: pack
      packagesToPack: src/Bmd.Claims.Contracts/Bmd.Claims.Contracts.csproj
  - script: dotnet nuget push "$(Build.ArtifactStagingDirectory)/*.nupkg" --api-key {V} --source https://api.nuget.org/v3/index.json --skip-duplicate
    displayName: Publish contracts package
""",
    "t33_nuget",
    True,
)

_t(
    "actuarial/pip.conf",
    """\
[global]
index-url = https://actuary-ci:{V}@brightmoor.jfrog.io/artifactory/api/pypi/pypi-virtual/simple
timeout = 60
""",
    "t33_artifactory",
    True,
)

_t(
    "policy-api/Dockerfile",
    """\
FROM eclipse-temurin:21-jre-alpine
WORKDIR /app
COPY target/policy-api.jar app.jar
COPY newrelic/newrelic.jar newrelic/newrelic.yml /app/newrelic/
ENV NEW_RELIC_APP_NAME="policy-api (prod)" \\
    NEW_RELIC_LICENSE_KEY={V} \\
    NEW_RELIC_LOG_LEVEL=info
EXPOSE 8443
ENTRYPOINT ["java", "-javaagent:/app/newrelic/newrelic.jar", "-jar", "/app/app.jar"]
""",
    "t33_nr_license",
    True,
)

_t(
    "ops/git-credentials-buildagent",
    """\
https://buildagent:{V}@gitlab.brightmoor.com
""",
    "t33_gitlab",
    True,
)

# =============================================================================== monitoring and chat-ops
_t(
    "ops/alertmanager/alertmanager.yml",
    """\
global:
  resolve_timeout: 5m
  slack_api_url: "{V}"
route:
  receiver: claims-oncall
  group_by: [alertname, namespace]
receivers:
  - name: claims-oncall
    slack_configs:
      - channel: "#claims-alerts"
        send_resolved: true
""",
    "t33_slack_webhook",
    True,
)

_t(
    "ops/oncall/pd_escalate.py",
    """\
import sys

from pdpyras import APISession

session = APISession("{V}", default_from="oncall-bot@brightmoor.nl")


def escalate(incident_id: str) -> None:
    session.rput(f"incidents/{incident_id}", json={"type": "incident", "escalation_level": 2})


if __name__ == "__main__":
    escalate(sys.argv[1])
""",
    "t33_pagerduty",
    True,
)

_t(
    "ops/monitoring/Send-BackupReport.ps1",
    """\
# Dagelijks backuprapport naar het Teams-kanaal IT Beheer
$webhook = "{V}"
$jobs = Get-VBRJob | Get-VBRJobScheduleOptions
$failed = $jobs | Where-Object { $_.LatestResult -ne "Success" }
$body = @{
    title = "Veeam backup $(Get-Date -Format yyyy-MM-dd)"
    text  = "Mislukt: $($failed.Count) van $($jobs.Count) jobs"
} | ConvertTo-Json
Invoke-RestMethod -Method Post -Uri $webhook -Body $body -ContentType "application/json"
""",
    "t33_teams_webhook",
    True,
)

_t(
    "ops/oncall/telegram_dyzur.py",
    """\
\"\"\"Powiadomienia dyzurowe dla zespolu w Krakowie (Telegram).\"\"\"

import requests

BOT_TOKEN = "{V}"
CHAT_ID = -1002219388571


def powiadom(tekst: str) -> None:
    requests.post(
        f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage",
        json={"chat_id": CHAT_ID, "text": tekst, "parse_mode": "HTML"},
        timeout=10,
    )
""",
    "t33_telegram",
    True,
)

_t(
    "ops/chatops/hubot.env",
    """\
HUBOT_NAME=polly
HUBOT_ADAPTER=slack
HUBOT_SLACK_TOKEN={V}
HUBOT_DEPLOY_ALLOWED=claims,quote,policy
""",
    "t33_slack_bot",
    True,
)


# =============================================================================== web apps (more)
_t(
    "agent-desk/server/session.js",
    """\
const session = require('express-session');
const RedisStore = require('connect-redis').default;

module.exports = (redisClient) =>
  session({
    store: new RedisStore({ client: redisClient, prefix: 'agentdesk:' }),
    secret: '{V}',
    name: 'bmd.agentdesk.sid',
    resave: false,
    saveUninitialized: false,
    cookie: { secure: true, httpOnly: true, sameSite: 'lax', maxAge: 8 * 3600 * 1000 },
  });
""",
    "t33_session_secret",
    True,
)

_t(
    "marketing-site/wp-config.php",
    """\
<?php
define( 'DB_NAME', 'wp_brightmoor' );
define( 'DB_USER', 'wp_brightmoor' );
define( 'DB_PASSWORD', getenv( 'WP_DB_PASSWORD' ) );
define( 'DB_HOST', 'mysql-web.bmd.internal' );

define( 'AUTH_KEY',         '{V}' );
define( 'SECURE_AUTH_KEY',  '{V2}' );
define( 'LOGGED_IN_KEY',    '{V3}' );
define( 'NONCE_KEY',        '{V4}' );

$table_prefix = 'wp_';
define( 'WP_DEBUG', false );
""",
    "t33_wp_salt",
    True,
)

_t(
    "broker-portal/config/initializers/mailgun.rb",
    """\
# Mailgun (EU region) voor uitnodigingen aan tussenpersonen
ActionMailer::Base.delivery_method = :mailgun
ActionMailer::Base.mailgun_settings = {
  api_key: "{V}",
  domain: "mg.brightmoor.nl",
  api_host: "api.eu.mailgun.net"
}
""",
    "t33_mailgun",
    True,
)

_t(
    "quote-engine/quote_engine/celery.py",
    """\
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quote_engine.settings.production")

app = Celery("quote_engine")
app.conf.broker_url = "{V}"
app.conf.result_backend = "{V2}"
app.conf.task_routes = {"rating.*": {"queue": "rating"}}
app.autodiscover_tasks()
""",
    "t33_redis_uri",
    True,
)

_t(
    "callcentre/events/config/runtime.exs",
    """\
import Config

if config_env() == :prod do
  config :cc_events, CcEvents.Broker,
    url: "{V}",
    prefetch: 20

  config :cc_events, CcEventsWeb.Endpoint,
    url: [host: "cc-events.bmd.internal", port: 443],
    secret_key_base: System.fetch_env!("SECRET_KEY_BASE")
end
""",
    "t33_amqp_uri",
    True,
)

_t(
    "legacy/policy-admin/web/Web.config",
    """\
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="PolicyAdmin" connectionString="{V}" providerName="System.Data.SqlClient" />
    <add name="Finance" connectionString="{V2}" providerName="System.Data.SqlClient" />
  </connectionStrings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
    <authentication mode="Windows" />
  </system.web>
</configuration>
""",
    "t33_mssql_connstr",
    True,
)


# =============================================================================== runbooks, tickets, chat
_t(
    "docs/runbooks/break-glass-azure.md",
    """\
# Break-glass: Azure AD global admin

Use only when Okta or Conditional Access locks everybody out (P1, approved by the CISO on call).

1. Go to https://portal.azure.com and sign in as `breakglass01@brightmoor.onmicrosoft.com`.
2. The password is `{V}` (sealed envelope copy in the safe in Amersfoort, room 2.14).
3. MFA: FIDO2 key #1 from the same safe.
4. Afterwards rotate the password and log the use in ServiceNow (category Security > Break-glass).
""",
    "t33_pw",
    True,
)

_t(
    "docs/runbooks/nl/sftp-partners.md",
    """\
# SFTP-koppelingen met partners

| Partner          | Host                         | Gebruiker      | Wachtwoord |
|------------------|------------------------------|----------------|------------|
| Independer       | sftp.brightmoor.nl           | independer_in  | {V}        |
| Schadegarant     | sftp.brightmoor.nl           | sg_upload      | {V2}       |
| Autoschade Ned.  | files.partner-asn.nl         | brightmoor     | {V3}       |

Sleutelrotatie: elk kwartaal, zie OPS-1022. Bij storing eerst `systemctl status sftpgo` op sftp01.
""",
    "t33_pw",
    True,
)

_t(
    "docs/runbooks/pl/konsola-genesys.md",
    """\
# Konsola Genesys Cloud - dostep awaryjny

Jesli SSO (Okta) nie dziala, zaloguj sie kontem lokalnym:

- login: `admin-krk@brightmoor.pl`
- hasło: `{V}`

Po zalogowaniu zmien kolejke "Szkody PL" na tryb awaryjny (komunikat IVR nr 3).
Haslo zmienia zespol IT po kazdym uzyciu - zglos to w ZGL (kategoria: Bezpieczenstwo).
""",
    "t33_pw",
    True,
)

_t(
    "docs/handover/overdracht-dwh-2024-11.txt",
    """\
Onderwerp: Overdracht DWH-beheer (Jeroen -> Agnieszka)

Hoi Agnieszka,

Zoals besproken hierbij de laatste losse eindjes voordat ik vertrek:

- De SSIS-server (sql-dwh01) draait nog onder het lokale account dwhsvc, wachtwoord {V}
  (stond nooit in de kluis, sorry).
- De Exact Online-koppeling gebruikt dezelfde service-user als Fivetran.
- De nachtelijke claims-snapshot faalt soms op maandag; gewoon opnieuw starten.

Groet,
Jeroen
""",
    "t33_weak_pw",
    True,
)

_t(
    "exports/jira/BMD-3187.json",
    """\
{
  "key": "BMD-3187",
  "fields": {
    "summary": "Automation rule cannot post to Confluence",
    "status": {"name": "In Progress"},
    "comment": {
      "comments": [
        {
          "author": {"displayName": "Marek Zielinski"},
          "created": "2024-10-02T10:14:22.000+0200",
          "body": "Created an API token for the automation user, it is {V} - please put it in the rule and I will delete this comment."
        },
        {
          "author": {"displayName": "Lotte Bakker"},
          "created": "2024-10-02T11:02:09.000+0200",
          "body": "Works now, thanks!"
        }
      ]
    }
  }
}
""",
    "t33_atlassian",
    True,
)

_t(
    "exports/slack/claims-genai/2024-09-18.json",
    """\
[
  {
    "type": "message",
    "user": "U04KQ2P7H1M",
    "text": "heeft iemand een OpenAI key voor de OCR-vergelijking? mijn trial is op",
    "ts": "1726651021.114939"
  },
  {
    "type": "message",
    "user": "U03B8XJ5L2A",
    "text": "gebruik deze maar even: {V} (project claims-poc, limiet 50 dollar)",
    "ts": "1726651187.220419"
  },
  {
    "type": "message",
    "user": "U04KQ2P7H1M",
    "text": "top, dank je!",
    "ts": "1726651203.331190"
  }
]
""",
    "t33_openai",
    True,
)

_t(
    "exports/passwords/it-vault-export-2023.csv",
    """\
folder,name,login_uri,login_username,login_password,login_totp
Infra,Azure breakglass,https://portal.azure.com,breakglass01@brightmoor.onmicrosoft.com,,otpauth://totp/Microsoft:breakglass01?secret={V}&issuer=Microsoft
Infra,AWS root (claims-prod),https://signin.aws.amazon.com,aws-root-claims@brightmoor.nl,,otpauth://totp/AWS:root?secret={V2}&issuer=Amazon%20Web%20Services
""",
    "t33_totp",
    True,
)

# =============================================================================== look-alikes: app config
_t(
    "quote-web/.env.example",
    """\
# Kopieer naar .env.local en vul je eigen sandbox-gegevens in
# Skopiuj do .env.local i uzupelnij wlasne dane testowe
NEXT_PUBLIC_SITE_URL=http://localhost:3000
QUOTE_API_URL=http://localhost:8080
MOLLIE_API_KEY={V}
MOLLIE_PROFILE_ID={V2}
AUTH0_CLIENT_SECRET={V3}
""",
    "t33_placeholder",
    False,
)

_t(
    "policy-api/src/main/resources/application-k8s.yml",
    """\
spring:
  datasource:
    url: jdbc:postgresql://${POLICY_DB_HOST}:5432/policy?ssl=true
    username: policy_svc
    password: {V}
  rabbitmq:
    host: rabbit-cc.bmd.internal
    username: policy_events
    password: ${RABBITMQ_PASSWORD}
""",
    "t33_spring_ref",
    False,
)

_t(
    "quote-engine/quote_engine/settings/base.py",
    """\
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = {V}

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "quotes",
        "USER": "quote_engine",
        "PASSWORD": os.environ["DB_PASSWORD"],
        "HOST": os.getenv("DB_HOST", "localhost"),
    }
}
MOLLIE_API_KEY = os.environ["MOLLIE_API_KEY"]
""",
    "t33_py_ref",
    False,
)

_t(
    "broker-portal/config/database.production.yml",
    """\
production:
  adapter: postgresql
  host: pg-broker.bmd.internal
  database: broker_portal
  username: broker_portal
  password: {V}
  sslmode: require
""",
    "t33_ruby_ref",
    False,
)

_t(
    "broker-portal/config/credentials/production.yml.enc",
    """\
{V}
""",
    "t33_rails_enc",
    False,
)

_t(
    "policy-docs-service/src/auth/jwks.ts",
    """\
// Public key used to verify tokens issued by the customer login (RS256).
export const CUSTOMER_LOGIN_PUBLIC_KEY = `{V}`;

export const ISSUER = 'https://login.brightmoor.nl/';
""",
    "t33_public_pem",
    False,
)

_t(
    "quote-api/internal/db/db.go",
    """\
package db

import (
	"database/sql"
	"fmt"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func Open() (*sql.DB, error) {
	password := {V}
	dsn := fmt.Sprintf("postgres://quote_api:%s@%s:5432/quotes?sslmode=require", password, os.Getenv("QUOTE_DB_HOST"))
	return sql.Open("pgx", dsn)
}
""",
    "t33_go_ref",
    False,
)

_t(
    "claims-api/src/Bmd.Claims.Api/appsettings.Staging.json",
    """\
{
  "ConnectionStrings": {
    "ClaimsDb": "Server=tcp:sql-bmd-claims-stg.database.windows.net,1433;Initial Catalog=claims;User ID=claims_api;Password={V};Encrypt=True;"
  },
  "AzureAd": {
    "ClientSecret": "@Microsoft.KeyVault(VaultName=kv-bmd-stg;SecretName=AzureAdClientSecret)"
  }
}
""",
    "t33_cs_ref",
    False,
)


# =============================================================================== look-alikes: claims, OCR, fraud
_t(
    "claims-ocr/tests/fixtures/ocr_result_invoice.json",
    """\
{
  "documentId": "{V}",
  "sourceSha256": "{V2}",
  "pages": 2,
  "language": "nl",
  "fields": {
    "InvoiceId": {"value": "F-2024-00871", "confidence": 0.97},
    "VendorName": {"value": "Autoschade Utrecht B.V.", "confidence": 0.94},
    "InvoiceTotal": {"value": 1834.50, "confidence": 0.99}
  },
  "modelVersion": "2024-02-29-preview"
}
""",
    "t33_sha256",
    False,
)

_t(
    "claims-ocr/tests/test_settings.py",
    """\
import pytest

from worker import settings


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch):
    monkeypatch.setattr(settings, "FORM_RECOGNIZER_KEY", "{V}")
    monkeypatch.setattr(settings, "FORM_RECOGNIZER_KEY_PL", "{V2}")


def test_keys_are_not_logged(caplog):
    settings.log_config()
    assert "{V}" not in caplog.text
""",
    "t33_fake",
    False,
)

_t(
    "fraud-models/mlruns/fraud-motor-nl/meta.yaml",
    """\
artifact_uri: abfss://mlflow@stbmdml.dfs.core.windows.net/3/{V}/artifacts
end_time: 1726735921044
entry_point_name: ''
experiment_id: '3'
lifecycle_stage: active
run_id: {V}
run_name: gbm-v7-nl
run_uuid: {V}
source_name: ''
start_time: 1726731102932
status: 3
tags: []
user_id: fraud_ml
parent_run_id: {V2}
""",
    "t33_run_id",
    False,
)


_t(
    "fraud-models/notebooks/02_features.ipynb",
    """\
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import keyring\\n",
    "import snowflake.connector\\n",
    "\\n",
    "conn = snowflake.connector.connect(\\n",
    "    account=\\"bmd-eu_central_1\\",\\n",
    "    user=\\"FRAUD_ML\\",\\n",
    "    password={V},\\n",
    "    warehouse=\\"DS_WH\\",\\n",
    ")"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    "t33_nb_ref",
    False,
)


_t(
    "actuarial/R/connect_dwh_secure.R",
    """\
library(DBI)

con <- dbConnect(
  odbc::odbc(),
  Driver = "Oracle in OraClient19Home1",
  DBQ    = "dwh-ora.bmd.internal:1521/DWHPRD",
  UID    = "ACTUARY_RO",
  PWD    = {V}
)
""",
    "t33_r_ref",
    False,
)

_t(
    "actuarial/data/exposure_sample_motor.csv",
    """\
policy_number,vin,start_date,end_date,exposure_years,region
{V},WBA3A5C50DF358612,2023-01-01,2023-12-31,1.000,NL-UT
{V2},VF1RFB00X65123456,2023-03-15,2024-03-14,1.000,PL-MA
{V3},TMBJJ7NE5J0123456,2023-07-01,2023-12-31,0.504,NL-NH
""",
    "t33_policy_no",
    False,
)


# =============================================================================== look-alikes: partner APIs and payments
_t(
    "broker-gateway/openapi/broker-api.yaml",
    """\
openapi: 3.0.3
info:
  title: Brightmoor Broker API
  version: 1.4.0
servers:
  - url: https://api.brightmoor.nl/broker/v1
components:
  securitySchemes:
    apiKey:
      type: apiKey
      in: header
      name: x-api-key
paths:
  /quotes:
    post:
      summary: Create a quote
      parameters:
        - in: header
          name: x-api-key
          required: true
          schema:
            type: string
          example: {V}
security:
  - apiKey: []
""",
    "t33_doc_placeholder",
    False,
)

_t(
    "docs/partners/nl/koppelen-broker-api.md",
    """\
# Koppelen met de Broker API

Voor de acceptatieomgeving gebruik je de gedeelde testgegevens. Voorbeeld van een connectiestring
in je eigen middleware:

```
BMD_BROKER_URL={V}
```

Vraag je eigen productiesleutel aan via partners@brightmoor.nl; deze sturen we nooit per e-mail.
""",
    "t33_example_uri",
    False,
)


_t(
    "payments-web/src/config/stripe.ts",
    """\
// Publishable keys are safe to ship to the browser.
export const STRIPE_PUBLISHABLE_KEY_NL = '{V}';
export const STRIPE_PUBLISHABLE_KEY_PL = '{V2}';
""",
    "t33_stripe_pk",
    False,
)


_t(
    "payments-service/test/fixtures/mollie_payment_paid.json",
    """\
{
  "count": 3,
  "_embedded": {
    "payments": [
      {"resource": "payment", "id": "{V}", "status": "paid", "amount": {"value": "42.17", "currency": "EUR"}, "method": "ideal"},
      {"resource": "payment", "id": "{V2}", "status": "failed", "amount": {"value": "42.17", "currency": "EUR"}, "method": "directdebit"},
      {"resource": "payment", "id": "{V3}", "status": "paid", "amount": {"value": "18.90", "currency": "EUR"}, "method": "creditcard"}
    ]
  }
}
""",
    "t33_mollie_id",
    False,
)

_t(
    "payments-service/test/fixtures/sepa_payouts.csv",
    """\
claim,beneficiary,iban,amount_eur
SCH20240012871,J. de Vries,{V},1834.50
SCH20240013342,A. Kowalska,{V2},620.00
SCH20240013907,Garage Zuidas B.V.,{V3},4210.75
""",
    "t33_iban",
    False,
)

_t(
    "payments-pl/src/test/java/pl/brightmoor/payu/SignatureTest.java",
    """\
package pl.brightmoor.payu;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class SignatureTest {
    private static final String SECOND_KEY = "{V}";

    @Test
    void verifiesNotificationSignature() {
        String header = "sender=checkout;signature=5f1d2a8c9b0e3f4a6d7c8b9a0e1f2d3c;algorithm=MD5";
        assertTrue(Signature.verify(header, "{\\"order\\":{}}", SECOND_KEY));
    }
}
""",
    "t33_fake",
    False,
)

# =============================================================================== look-alikes: call centre and mobile
_t(
    "callcentre/asterisk/pjsip_trunks.conf.sample",
    """\
; Voorbeeld - echte waarden staan in /etc/asterisk/pjsip_secrets.conf (niet in git)
[kpn-trunk-auth]
type=auth
auth_type=userpass
username=0334567890
password={V}

[orange-pl-auth]
type=auth
auth_type=userpass
username=48123456700
password={V2}
""",
    "t33_redacted",
    False,
)


_t(
    "callcentre/ivr/config/default.json",
    """\
{
  "twilio": {
    "accountSid": "{V}",
    "authToken": "",
    "subaccountSidPl": "{V2}"
  },
  "languages": ["nl", "pl", "en"]
}
""",
    "t33_twilio_sid",
    False,
)


_t(
    "mobile/android/docs/signing-report.txt",
    """\
> Task :app:signingReport
Variant: release
Config: release
Store: /builds/mobile/keys/brightmoor-release.jks
Alias: brightmoor
SHA-256: {V}
Valid until: Sunday, 12 March 2051
----------
Variant: playUpload
Config: upload
Store: /builds/mobile/keys/brightmoor-upload.jks
Alias: upload
SHA-256: {V2}
Valid until: Friday, 3 May 2052
""",
    "t33_cert_fpr",
    False,
)

_t(
    "mobile/android/app/signing.gradle.kts",
    """\
android {
    signingConfigs {
        create("release") {
            storeFile = file("../keys/brightmoor-release.jks")
            storePassword = {V}
            keyAlias = "brightmoor"
            keyPassword = {V2}
        }
    }
}
""",
    "t33_gradle_ref",
    False,
)

_t(
    "mobile/ios/fastlane/Appfile",
    """\
app_identifier("nl.brightmoor.app")
apple_id("mobile@brightmoor.nl")
itc_team_id("118277392")
team_id("{V}")

for_platform :ios do
  for_lane :beta_pl do
    app_identifier("pl.brightmoor.app")
    team_id("{V2}")
  end
end
""",
    "t33_apple_team",
    False,
)

_t(
    "mobile/app/src/config/recaptcha.ts",
    """\
// reCAPTCHA Enterprise site keys (public, embedded in the app)
export const RECAPTCHA_SITE_KEY_ANDROID = '{V}';
export const RECAPTCHA_SITE_KEY_IOS = '{V2}';
export const RECAPTCHA_SITE_KEY_WEB = '{V3}';
""",
    "t33_recaptcha_site",
    False,
)

_t(
    "mobile/app/src/i18n/pl.json",
    """\
{
  "login.title": "Zaloguj się do Brightmoor",
  "login.password": "Hasło",
  "login.forgot": "{V}",
  "register.passwordRule": "{V2}",
  "register.passwordMismatch": "{V3}"
}
""",
    "t33_ui_text_pl",
    False,
)


_t(
    "quote-web/src/config/google.ts",
    """\
// OAuth client for "Inloggen met Google" on mijn.brightmoor.nl (client ids are public)
export const GOOGLE_CLIENT_ID = '{V}';
export const GOOGLE_CLIENT_ID_PL = '{V2}';
""",
    "t33_google_client_id",
    False,
)

# =============================================================================== look-alikes: DWH and ETL
_t(
    "dwh/dbt/profiles.ci.yml",
    """\
brightmoor_dwh:
  target: ci
  outputs:
    ci:
      type: snowflake
      account: bmd-eu_central_1
      user: DBT_CI
      password: {V}
      role: TRANSFORMER_CI
      warehouse: CI_WH
      database: ANALYTICS_CI
      schema: "{{ env_var('DBT_SCHEMA', 'ci') }}"
      threads: 4
""",
    "t33_jinja_ref",
    False,
)


_t(
    "dwh/sql/pg_roles_dump.sql",
    """\
-- pg_dumpall --roles-only (dwh-pg), 2024-11-04
CREATE ROLE dwh_loader;
ALTER ROLE dwh_loader WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V}';
CREATE ROLE claims_etl;
ALTER ROLE claims_etl WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V2}';
CREATE ROLE actuary_ro;
ALTER ROLE actuary_ro WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V3}';
""",
    "t33_scram",
    False,
)

_t(
    "dwh/sql/mysql_crm_users.sql",
    """\
-- SELECT user, host, authentication_string FROM mysql.user;  (mysql-crm, 5.7)
INSERT INTO mysql.user (Host, User, authentication_string, plugin) VALUES
  ('10.30.%', 'crm_app', '{V}', 'mysql_native_password'),
  ('10.30.%', 'dwh_export', '{V2}', 'mysql_native_password'),
  ('localhost', 'backup', '{V3}', 'mysql_native_password');
""",
    "t33_mysql_hash",
    False,
)

_t(
    "dwh/scripts/load_claims_snapshot_v2.sh",
    """\
#!/usr/bin/env bash
# replaces load_claims_snapshot.bat; password no longer on the command line
set -euo pipefail
export SQLCMDPASSWORD={V}
sqlcmd -S sql-dwh01.bmd.local -U etl_loader -d DWH_STAGING -i sql/claims_snapshot.sql
""",
    "t33_sh_ref",
    False,
)


# =============================================================================== look-alikes: infrastructure
_t(
    "infra/network/ams-core-sw02.cfg",
    """\
!
hostname ams-core-sw02
!
enable secret {V}
!
username netadmin privilege 15 secret {V2}
username backup-ro privilege 1 secret {V3}
!
ip domain name bmd.local
!
end
""",
    "t33_cisco_hash",
    False,
)

_t(
    "infra/network/fw-ams01-admins.conf",
    """\
config system admin
    edit "admin"
        set accprofile "super_admin"
        set vdom "root"
        set password {V}
    next
    edit "noc-krk"
        set accprofile "prof_admin"
        set vdom "root"
        set password {V2}
    next
end
""",
    "t33_fortigate_enc",
    False,
)

_t(
    "infra/images/golden/shadow.fragment",
    """\
root:{V}:19723:0:99999:7:::
bmdadmin:{V2}:19723:0:99999:7:::
ansible:!*:19723:0:99999:7:::
""",
    "t33_sha512crypt",
    False,
)

_t(
    "infra/nginx/htpasswd-grafana",
    """\
noc:{V}
dwh-team:{V2}
callcentre-lead:{V3}
""",
    "t33_apr1",
    False,
)

_t(
    "infra/ansible/group_vars/all/vault.yml",
    """\
---
vault_ldap_bind_password: !vault |
  {IV}
vault_domain_join_password: !vault |
  {IV2}
""",
    "t33_ansible_vault",
    False,
)


_t(
    "infra/windows/Join-Domain-v2.ps1",
    """\
param([string]$OU = "OU=Callcentre,OU=Workstations,DC=bmd,DC=local")

$user = "BMD\\svc-domainjoin"
$pass = {V}
if ($pass -isnot [securestring]) { $pass = ConvertTo-SecureString $pass -AsPlainText -Force }
$cred = New-Object System.Management.Automation.PSCredential($user, $pass)
Add-Computer -DomainName "bmd.local" -OUPath $OU -Credential $cred -Restart -Force
""",
    "t33_ps_ref",
    False,
)

_t(
    "infra/bastion/authorized_keys",
    """\
{V}
{V2}
{V3}
""",
    "t33_ssh_pub",
    False,
)

_t(
    "infra/tls/star.brightmoor.nl.chain.pem",
    """\
{V}
{V2}
""",
    "t33_cert",
    False,
)

_t(
    "infra/tls/legacy-policyadmin.key",
    """\
{V}
""",
    "t33_enc_pem",
    False,
)

_t(
    "infra/sftp/partners/rankomat-pgp.asc",
    """\
{V}
""",
    "t33_pgp_pub",
    False,
)

_t(
    "infra/sops/.sops.yaml",
    """\
creation_rules:
  - path_regex: k8s/.*/secrets\\.enc\\.yaml$
    age: >-
      {V},
      {V2}
  - path_regex: infra/terraform/.*\\.enc\\.json$
    age: {V3}
""",
    "t33_age_pub",
    False,
)

# =============================================================================== look-alikes: cloud and Kubernetes
_t(
    "k8s/claims/secrets.enc.yaml",
    """\
apiVersion: v1
kind: Secret
metadata:
  name: claims-api
  namespace: claims
type: Opaque
stringData:
  SQL_PASSWORD: {V}
  REDIS_PASSWORD: {V2}
sops:
  age:
    - recipient: age1x3w0c9ru6qv2s7e6hd6u5tpj8v4ze5fgklh4qz2mfqz7r8xgkdsqd4h7rv
  lastmodified: "2024-11-12T09:41:07Z"
  version: 3.9.0
""",
    "t33_sops",
    False,
)

_t(
    "k8s/quote/quote-db-sealed.yaml",
    """\
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: quote-db
  namespace: quote
spec:
  encryptedData:
    password: {V}
    username: {V2}
  template:
    type: Opaque
""",
    "t33_sealed",
    False,
)

_t(
    "charts/claims-api/templates/secret.yaml",
    """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "claims.fullname" . }}
type: Opaque
data:
  SQL_PASSWORD: {V}
  MOLLIE_API_KEY: {{ .Values.secrets.mollieApiKey | b64enc }}
""",
    "t33_helm_ref",
    False,
)

_t(
    "k8s/ocr/deployment.yaml",
    """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ocr-worker
  namespace: ocr
spec:
  replicas: 3
  selector:
    matchLabels: {app: ocr-worker}
  template:
    metadata:
      labels: {app: ocr-worker}
    spec:
      containers:
        - name: worker
          image: registry.brightmoor.com/claims/ocr-worker@{V}
          env:
            - name: FORM_RECOGNIZER_KEY
              valueFrom:
                secretKeyRef: {name: ocr-worker, key: form-recognizer-key}
        - name: clamav
          image: registry.brightmoor.com/base/clamav@{V2}
""",
    "t33_image_digest",
    False,
)

_t(
    "infra/terraform/azure/sql.tf",
    """\
resource "azurerm_mssql_server" "claims" {
  name                         = "sql-bmd-claims"
  resource_group_name          = azurerm_resource_group.claims.name
  location                     = "westeurope"
  version                      = "12.0"
  administrator_login          = "sqladmin"
  administrator_login_password = {V}
  minimum_tls_version          = "1.2"
}
""",
    "t33_tf_ref",
    False,
)

_t(
    "claims-ocr/lambda/serverless.yml",
    """\
service: textract-callback
provider:
  name: aws
  runtime: python3.12
  region: eu-central-1
  environment:
    TEXTRACT_SECRET_ARN: {V}
    RESULTS_DB_SECRET_ARN: {V2}
functions:
  callback:
    handler: handler.main
""",
    "t33_secret_arn",
    False,
)

_t(
    "claims-ocr/lambda/env.prod.json",
    """\
{
  "Variables": {
    "STAGE": "prod",
    "RESULTS_DB_PASSWORD": "{V}",
    "FORM_RECOGNIZER_KEY": "{V2}"
  }
}
""",
    "t33_kms_blob",
    False,
)

_t(
    "policy-api/config-repo/policy-api-prod.yml",
    """\
spring:
  datasource:
    password: '{V}'
  rabbitmq:
    password: '{V2}'
bmd:
  adyen:
    api-key: '{V3}'
""",
    "t33_spring_cipher",
    False,
)

_t(
    "legacy/policy-admin/conf/datasource.properties",
    """\
# Jasypt-versleuteld (PBEWITHHMACSHA512ANDAES_256), sleutel via JASYPT_ENCRYPTOR_PASSWORD
jdbc.url=jdbc:sqlserver://sql-policyadmin01.bmd.local:1433;databaseName=PolicyAdmin
jdbc.username=policyadmin_app
jdbc.password={V}
smtp.password={V2}
""",
    "t33_jasypt",
    False,
)

_t(
    "claims-api/db/seed/vault_transit_sample.sql",
    """\
-- bank account numbers are stored encrypted with Vault transit (key: claims-iban)
INSERT INTO payout_accounts (claim_id, iban_encrypted, holder) VALUES
  (871223, '{V}', 'J. de Vries'),
  (871224, '{V2}', 'A. Kowalska');
""",
    "t33_vault_transit",
    False,
)

# =============================================================================== look-alikes: CI/CD and lockfiles
_t(
    ".github/workflows/deploy-quote-web.yml",
    """\
name: deploy-quote-web
on:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: ubuntu-latest
    environment: production
    steps:
      - uses: actions/checkout@v4
      - uses: azure/login@v2
        with:
          creds: '{"clientId":"${{ vars.AZURE_CLIENT_ID }}","clientSecret":"{V}","subscriptionId":"${{ vars.AZURE_SUBSCRIPTION_ID }}","tenantId":"${{ vars.AZURE_TENANT_ID }}"}'
      - run: npm ci && npm run build
        env:
          SONAR_TOKEN: ${{ secrets.SONAR_TOKEN }}
""",
    "t33_ci_ref",
    False,
)

_t(
    "quote-web/package-lock.json",
    """\
{
  "name": "quote-web",
  "version": "3.41.0",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/jsonwebtoken": {
      "version": "9.0.2",
      "resolved": "https://registry.npmjs.org/jsonwebtoken/-/jsonwebtoken-9.0.2.tgz",
      "integrity": "{V}"
    },
    "node_modules/@mollie/api-client": {
      "version": "3.7.0",
      "resolved": "https://registry.npmjs.org/@mollie/api-client/-/api-client-3.7.0.tgz",
      "integrity": "{V2}"
    }
  }
}
""",
    "t33_sri",
    False,
)


_t(
    "ops/jenkins/credentials.xml",
    """\
<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1337.v60b_d7b_c7b_c9f">
  <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
    <entry>
      <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
      <java.util.concurrent.CopyOnWriteArrayList>
        <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
          <id>nexus-deploy</id>
          <username>dwh-deploy</username>
          <password>{V}</password>
        </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
        <org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
          <id>sonar-token</id>
          <secret>{V2}</secret>
        </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
      </java.util.concurrent.CopyOnWriteArrayList>
    </entry>
  </domainCredentialsMap>
</com.cloudbees.plugins.credentials.SystemCredentialsProvider>
""",
    "t33_jenkins_enc",
    False,
)

_t(
    "deploy/releases/policy-api.yaml",
    """\
# generated by release-bot
service: policy-api
version: 5.18.2
commit: {V}
previous_commit: {V2}
approved_by: l.bakker
change: CHG0041877
""",
    "t33_git_sha",
    False,
)

# =============================================================================== look-alikes: identity and users
_t(
    "quote-engine/fixtures/staff_users.json",
    """\
[
  {"model": "auth.user", "pk": 1, "fields": {"username": "admin", "password": "{V}", "is_superuser": true}},
  {"model": "auth.user", "pk": 2, "fields": {"username": "pricing", "password": "{V2}", "is_staff": true}}
]
""",
    "t33_pbkdf2",
    False,
)

_t(
    "claims-api/db/seed/AspNetUsers.sql",
    """\
INSERT INTO AspNetUsers (Id, UserName, NormalizedUserName, Email, PasswordHash, SecurityStamp) VALUES
 ('5d1a0b5e-3f1d-4c61-9d2c-41a7b3c0e001', 'behandelaar1', 'BEHANDELAAR1', 'b1@brightmoor.nl', '{V}', 'QY3LZ6EYJ2S4NV4W'),
 ('5d1a0b5e-3f1d-4c61-9d2c-41a7b3c0e002', 'likwidator1', 'LIKWIDATOR1', 'l1@brightmoor.pl', '{V2}', 'K2HZ7WQ5T3PRS6MD');
""",
    "t33_aspnet_hash",
    False,
)

_t(
    "broker-portal/db/seeds/brokers.sql",
    """\
INSERT INTO users (email, encrypted_password, role, created_at) VALUES
  ('support@mona-assurantien.nl', '{V}', 'broker_admin', NOW()),
  ('biuro@ubezpieczenia-nowak.pl', '{V2}', 'broker', NOW());
""",
    "t33_bcrypt",
    False,
)

_t(
    "agent-desk/config/admin-users.yaml",
    """\
# local fallback accounts when Okta is down (argon2id hashes)
users:
  - name: teamlead-nl
    password_hash: "{V}"
  - name: teamlead-pl
    password_hash: "{V2}"
""",
    "t33_argon2",
    False,
)


_t(
    "infra/auth/jwks.json",
    """\
{
  "keys": [
    {
      "kty": "RSA",
      "use": "sig",
      "alg": "RS256",
      "kid": "bmd-login-2024-09",
      "n": "{V}",
      "e": "AQAB"
    },
    {
      "kty": "RSA",
      "use": "sig",
      "alg": "RS256",
      "kid": "bmd-login-2025-03",
      "n": "{V2}",
      "e": "AQAB"
    }
  ]
}
""",
    "t33_jwk_n",
    False,
)

# =============================================================================== look-alikes: docs, tickets, chat
_t(
    "docs/runbooks/nl/wachtwoord-resetten.md",
    """\
# Wachtwoord resetten voor klanten (Mijn Brightmoor)

1. Zoek de klant op in Agent Desk op polisnummer of e-mailadres.
2. Klik op *Stuur resetlink*. De klant ontvangt een e-mail met de tekst
   "Wachtwoord vergeten? Klik op de link om een nieuw wachtwoord in te stellen."
3. Nooit zelf een wachtwoord kiezen of telefonisch doorgeven.

Het breakglass-account van Agent Desk: zie `{V}` (alleen teamleads hebben toegang).
""",
    "t33_kv_ref",
    False,
)


_t(
    "docs/dev/localstack.md",
    """\
# Running the OCR worker against LocalStack

LocalStack accepts any credentials; the AWS documentation examples work fine:

```bash
{V}
export AWS_ENDPOINT_URL=http://localhost:4566
```
""",
    "t33_example_aws",
    False,
)

_t(
    "exports/servicenow/INC0098812.txt",
    """\
Number: INC0098812
Short description: Mollie live key exposed in quote-web build log
State: Resolved
Related: {V}, {V2}

Work notes:
2024-08-21 09:14 (m.devries) Key rotated in Mollie dashboard, old key revoked.
2024-08-21 09:40 (m.devries) New key stored in Key Vault (mollie-live); build log purged.
2024-08-21 10:02 (a.nowak) Follow-up change {V3} to add secret scanning to the pipeline.
""",
    "t33_ticket",
    False,
)

_t(
    "exports/teams/it-beheer-2024-10-07.txt",
    """\
[07-10-2024 08:52] Sanne Visser: wie heeft het nieuwe wachtwoord van de Genesys admin?
[07-10-2024 08:53] Piotr Wozniak: wklejam: {V}
[07-10-2024 08:53] Piotr Wozniak: (zamaskowane automatycznie, stoi w Bitwarden)
[07-10-2024 08:55] Sanne Visser: top, gevonden in Bitwarden
[07-10-2024 09:10] Piotr Wozniak: the GitHub token from Friday was also pasted as {V2}, already revoked
""",
    "t33_redacted",
    False,
)


_t(
    "dwh/README.md",
    """\
# Brightmoor DWH

Staging lives in PostgreSQL, marts in Snowflake. To run the loaders locally, point them at your own
database; the connection string format is the usual one, for example:

    export DWH_STAGING_URL={V}
    export DWH_REPLICA_URL={V2}

Never commit real connection strings: CI reads them from Vault (`secret/dwh/*`).
""",
    "t33_example_uri",
    False,
)

_t(
    "quote-api/internal/broker/auth_test.go",
    """\
package broker

import "testing"

func TestRejectsWrongAPIKey(t *testing.T) {
\tsrv := newTestServer(t, Config{APIKey: "{V}"})
\tresp := srv.do("POST", "/broker/v1/quotes", map[string]string{"x-api-key": "definitely-wrong"})
\tif resp.StatusCode != 401 {
\t\tt.Fatalf("expected 401, got %d", resp.StatusCode)
\t}
}
""",
    "t33_fake",
    False,
)
