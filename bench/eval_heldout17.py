"""Blind part ``heldout17``: Halcyon Nordic Airways (HNA), a mid-size airline, and its IT: the
crew scheduling and rostering suite (Java/Kotlin services, Oracle and PostgreSQL, crew mobile
app), the booking engine and NDC/GDS connectors (Go and TypeScript services, Amadeus and Sabre
clients, payment gateway integrations with Adyen and Stripe), the SkyMiles-style loyalty
programme "Halcyon Horizon" (Ruby on Rails, PHP partner portal, C#/.NET points ledger, SQL Server),
aircraft maintenance records (MRO: Python ETL from AMOS/TRAX exports, .NET work order services,
document store for airworthiness certificates), and airport integrations (SITA Type B messaging,
baggage BSM/BPM feeds over MQ, FIDS displays, ACARS gateways, Rust and C# listeners). The
infrastructure is spread over AWS, Azure and GCP with some OCI (Terraform, Helm, Kubernetes,
Ansible, GitHub Actions, GitLab CI, Azure Pipelines, Jenkins), plus runbooks and handovers in
English, Norwegian, Swedish, German and Spanish, i18n bundles for the booking site, and logs.
Written blind (without seeing the scanner, its rules or other parts' templates).

Look-alikes sit in the same files under the same key names: PNR record locators, e-ticket and
loyalty member numbers, aircraft registrations, ICAO 24-bit addresses, work order and task card
ids, UUIDs used as ids, digests and checksums, encrypted values (SOPS, KMS, Ansible Vault, Jasypt,
sealed secrets), references to env vars and secret stores in every language, placeholders and
redacted values, public keys and certificates, documented example credentials, and i18n text
about passwords.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import textwrap
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
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PNR_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class Heldout17Values(evalset.Values):
    """Value generators of the heldout17 part; every name starts with ``h17_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "aileron",
            "fjord",
            "jetstream",
            "cockpit",
            "boarding",
            "skylark",
            "nordlys",
            "winglet",
            "turbofan",
            "layover",
            "altitude",
            "polaris",
            "stratus",
        ]
        self.users = [
            "crewsched",
            "booking",
            "loyalty",
            "mro_etl",
            "sita_gw",
            "bagtrack",
            "fids",
            "ndc_api",
            "payments",
            "reporting",
        ]

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

    def _armor(self, label: str, nbytes: int) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def _aws_id(self) -> str:
        return self.pick(["AKIA", "AKIA", "ASIA"]) + self.s(16, string.ascii_uppercase + "234567")

    def _aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def h17_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*$"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 22), ALNUM + "!#%^*-_=+"
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Hn" + self.s(14, ALNUM) + self.pick(list("!#%&"))
        if shape == 4:
            return self.s(20, ALNUM)
        leet = word.replace("a", "4").replace("o", "0").replace("i", "1")
        return leet[0].upper() + leet[1:] + "@" + self.s(3, DIGITS)

    def h17_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Halcyon1",
                    "Welcome2024!",
                    "Password123",
                    "crew1234",
                    "Boarding1!",
                    "letmein",
                    "Qwerty!23",
                    "Oslo2023",
                    "amos",
                ]
            )
        if shape == 1:
            return "Halcyon" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "99"])
        return self.pick(["Vinter", "Sommer", "Host", "Var"]) + str(self.rng.randrange(2019, 2026))

    def h17_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(12, 24), ALNUM + "-_.")

    def h17_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-jenkins", "hna-deploy"])
        return base64.b64encode(f"{user}:{self.h17_pw()}".encode()).decode()

    def h17_b64_pw(self) -> str:
        return base64.b64encode(self.h17_pw().encode()).decode()

    # ------------------------------------------------------------------ positives: URIs
    def h17_pg_uri(self) -> str:
        user = self.pick(self.users)
        host = self.pick(
            [
                "crew-db.prod.hna.internal",
                "pg-booking-01.c9xk2mlq.eu-north-1.rds.amazonaws.com",
                "10.42.8.15",
                "mro-pg.postgres.database.azure.com",
            ]
        )
        scheme = self.pick(["postgres", "postgresql", "postgresql+psycopg2"])
        return f"{scheme}://{user}:{self.h17_url_pw()}@{host}:5432/{user}"

    def h17_mongo_uri(self) -> str:
        cluster = "horizon-prod." + self.s(5, LOWNUM) + ".mongodb.net"
        return f"mongodb+srv://loyalty_app:{self.h17_url_pw()}@{cluster}/horizon?retryWrites=true&w=majority"

    def h17_redis_uri(self) -> str:
        host = self.pick(
            ["redis-booking.hna.internal", "hna-cache.redis.cache.windows.net", "10.20.3.4"]
        )
        port = self.pick(["6379", "6380"])
        scheme = "rediss" if port == "6380" else "redis"
        return f"{scheme}://:{self.h17_url_pw()}@{host}:{port}/0"

    def h17_amqp_uri(self) -> str:
        host = self.pick(
            ["mq-bags.hna.internal", "b-3f1.mq.eu-north-1.amazonaws.com", "rabbit-ops"]
        )
        return f"amqps://{self.pick(self.users)}:{self.h17_url_pw()}@{host}:5671/bags"

    def h17_sqlserver_conn(self) -> str:
        server = self.pick(
            ["sql-loyalty-prod.database.windows.net", "HNA-SQL02\\LEDGER", "tcp:10.8.1.22,1433"]
        )
        return (
            f"Server={server};Database=HorizonLedger;User Id={self.pick(self.users)};"
            f"Password={self.h17_pw()};Encrypt=True;TrustServerCertificate=False"
        )

    def h17_azure_storage(self) -> str:
        acct = "hna" + self.pick(["mrodocs", "bagimages", "crewdocs", "fidsassets"]) + "prod"
        return (
            f"DefaultEndpointsProtocol=https;AccountName={acct};"
            f"AccountKey={self._b64(64)};EndpointSuffix=core.windows.net"
        )

    def h17_azure_sb(self) -> str:
        ns = self.pick(["hna-ops-bus", "hna-bsm-events", "hna-loyalty-sb"])
        return (
            f"Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={self._b64(32)}"
        )

    def h17_sas_url(self) -> str:
        sig = self._b64(32).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        return (
            "https://hnamrodocsprod.blob.core.windows.net/airworthiness?"
            f"sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2026-12-31T23:59:59Z&st=2024-01-01T00:00:00Z&spr=https&sig={sig}"
        )

    # ------------------------------------------------------------------ positives: vendor tokens
    def h17_github(self) -> str:
        return self._crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def h17_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h17_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h17_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h17_slack_webhook(self) -> str:
        return f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/{self.s(24)}"

    def h17_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://halcyonair.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def h17_stripe(self) -> str:
        return self.pick(["sk_live_", "rk_live_"]) + self.s(self.rng.choice([24, 34, 99]))

    def h17_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32)

    def h17_adyen(self) -> str:
        return (
            "AQE"
            + self.s(2, ALNUM)
            + "hmfxL"
            + self.s(40, ALNUM)
            + "="
            + self.s(60, ALNUM + "+/")
            + "=="
        )

    def h17_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h17_twilio(self) -> str:
        return "SK" + self.s(32, HEX)

    def h17_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h17_aws_pair_ini(self) -> str:
        return f"aws_access_key_id = {self._aws_id()}\naws_secret_access_key = {self._aws_secret()}"

    def h17_aws_pair_env(self) -> str:
        return f"AWS_ACCESS_KEY_ID={self._aws_id()}\nAWS_SECRET_ACCESS_KEY={self._aws_secret()}"

    def h17_aws_secret(self) -> str:
        return self._aws_secret()

    def h17_azure_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h17_datadog(self) -> str:
        return self.s(32, HEX)

    def h17_pagerduty(self) -> str:
        return "u+" + self.s(18, URLSAFE)

    def h17_newrelic_ingest(self) -> str:
        return "eu01xx" + self.s(34, HEX) + "NRAL"

    def h17_vault(self) -> str:
        return "hvs." + self.s(24, URLSAFE)

    def h17_jfrog(self) -> str:
        return "cmVmdGtuOjAxOjE3" + self.s(48, ALNUM)

    def h17_dockerhub(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h17_atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, URLSAFE) + "=" + self.s(8, HEXU)

    def h17_sentry_auth(self) -> str:
        return "sntrys_" + self._b64(96, pad=False)

    def h17_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h17_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def h17_firebase(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h17_mailgun(self) -> str:
        return f"{self.s(32, HEX)}-{self.s(8, HEX)}-{self.s(8, HEX)}"

    def h17_grafana(self) -> str:
        return f"glsa_{self.s(32)}_{self.s(8, HEX)}"

    def h17_tfc(self) -> str:
        return f"{self.s(14)}.atlasv1.{self.s(67)}"

    def h17_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(70, URLSAFE)

    def h17_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        payload = part(
            {
                "sub": self.pick(self.users),
                "iss": "https://auth.halcyonair.no",
                "scope": self.pick(["crew:read", "booking:write", "loyalty:admin"]),
                "exp": 1900000000 + self.rng.randrange(10**7),
            }
        )
        return f"{header}.{payload}.{self._b64(self.pick([32, 256]), urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ positives: generic
    def h17_api_key(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return self.s(40, HEX)
        if shape == 2:
            return "hna_live_" + self.s(32, ALNUM)
        if shape == 3:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).replace("-", "")
        return self.s(8, UPNUM) + "-" + self.s(24, ALNUM)

    def h17_client_secret(self) -> str:
        return self.pick([self.s(48, URLSAFE), self._b64(36), self.s(64, HEX)])

    def h17_hmac(self) -> str:
        return self.pick([self._b64(32), self.s(64, HEX), self._b64(48, urlsafe=True, pad=False)])

    def h17_django(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h17_rails_key(self) -> str:
        return self.s(128, HEX)

    def h17_bearer(self) -> str:
        return self.s(self.rng.randrange(36, 60), URLSAFE)

    # ------------------------------------------------------------------ positives: keys
    def h17_rsa_key(self) -> str:
        return self._armor("RSA PRIVATE KEY", 48 * self.rng.randrange(10, 16))

    def h17_pkcs8(self) -> str:
        return self._armor("PRIVATE KEY", 48 * self.rng.randrange(12, 17))

    def h17_ec_key(self) -> str:
        return self._armor("EC PRIVATE KEY", 121)

    def h17_openssh(self) -> str:
        return self._armor("OPENSSH PRIVATE KEY", 48 * 7)

    def h17_pkcs8_escaped(self) -> str:
        return self.h17_pkcs8().replace("\n", "\\n") + "\\n"

    # ------------------------------------------------------------------ negatives
    def h17_placeholder(self) -> str:
        return self.pick(
            [
                "<your-password>",
                "CHANGE_ME",
                "changeme",
                "xxxxxxxxxxxxxxxx",
                "********",
                "REPLACE_WITH_REAL_SECRET",
                "<api-key>",
                "TODO",
                "dummy",
                "your_token_here",
                "<redacted>",
                "[MASKED]",
                "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
                "AKIAXXXXXXXXXXXXXXXX",
            ]
        )

    def h17_env_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${CREW_DB_PASSWORD:?missing}",
                "$(AMADEUS_CLIENT_SECRET)",
                "${{ secrets.STRIPE_SECRET_KEY }}",
                "{{ .Values.booking.dbPassword }}",
                "{{ lookup('env', 'SITA_PASSWORD') }}",
                "%env(LOYALTY_API_KEY)%",
                "#{ENV['HORIZON_DB_PASSWORD']}",
                "$env:MRO_SQL_PASSWORD",
                "${vault:secret/booking#db_password}",
                "${ssm:/hna/prod/booking/db_password}",
                "@Microsoft.KeyVault(SecretUri=https://kv-hna-prod.vault.azure.net/secrets/LedgerSql/)",
                "op://HNA-Ops/SITA-Gateway/password",
                "projects/hna-booking/secrets/ndc-api-key/versions/latest",
            ]
        )

    def h17_code_ref(self) -> str:
        return self.pick(
            [
                'os.environ["AMOS_PASSWORD"]',
                'os.getenv("SITA_TYPEB_PASSWORD", "")',
                'System.getenv("CREW_DB_PASSWORD")',
                'os.Getenv("NDC_API_KEY")',
                "process.env.STRIPE_SECRET_KEY",
                'ENV.fetch("HORIZON_API_KEY")',
                "getenv('PARTNER_PORTAL_SECRET')",
                'Environment.GetEnvironmentVariable("LEDGER_SQL_PASSWORD")',
                'std::env::var("BSM_MQ_PASSWORD")?',
                'configuration["Amadeus:ClientSecret"]',
                "secrets.get_secret_value(SecretId='hna/prod/booking')['SecretString']",
            ]
        )

    def h17_pnr(self) -> str:
        return self.s(6, PNR_CHARS)

    def h17_eticket(self) -> str:
        return self.pick(["618", "125", "074", "086"]) + self.s(10, DIGITS)

    def h17_member_no(self) -> str:
        return "HZ" + self.s(10, DIGITS)

    def h17_tail(self) -> str:
        return self.pick(["LN-", "SE-", "OY-", "TF-"]) + self.s(3, string.ascii_uppercase)

    def h17_icao_hex(self) -> str:
        return self.pick(["47", "4A", "45"]) + self.s(4, HEXU)

    def h17_workorder(self) -> str:
        return (
            self.pick(["WO-", "TC-", "NRC-", "DFR-"]) + self.s(2, DIGITS) + "-" + self.s(6, DIGITS)
        )

    def h17_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h17_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h17_git_sha(self) -> str:
        return self.s(40, HEX)

    def h17_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def h17_integrity(self) -> str:
        return "sha512-" + self._b64(64)

    def h17_bcrypt(self) -> str:
        return "$2a$12$" + self.s(53, ALNUM + "./")

    def h17_argon2(self) -> str:
        return (
            f"$argon2id$v=19$m=65536,t=3,p=4${self._b64(16, pad=False)}${self._b64(32, pad=False)}"
        )

    def h17_pw_hash(self) -> str:
        return self.pick(
            [
                self.h17_bcrypt(),
                self.h17_argon2(),
                "{SSHA}" + self._b64(24),
                "sha1$" + self.s(12, LOWNUM) + "$" + self.s(40, HEX),
            ]
        )

    def h17_sops(self) -> str:
        data = self._b64(self.rng.randrange(12, 48))
        return f"ENC[AES256_GCM,data:{data},iv:{self._b64(32)},tag:{self._b64(16)},type:str]"

    def h17_kms_blob(self) -> str:
        return "AQICAHh" + self._b64(150)

    def h17_jasypt(self) -> str:
        return "ENC(" + self._b64(self.rng.choice([32, 48])) + ")"

    def h17_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h17_sealed(self) -> str:
        return "AgB" + self._b64(400)

    def h17_cert(self) -> str:
        return self._armor("CERTIFICATE", 48 * 14)

    def h17_public_pem(self) -> str:
        return self._armor("PUBLIC KEY", 294)

    def h17_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
        ).decode()
        return f"ssh-ed25519 {body} {self.pick(self.users)}@hna-bastion"

    def h17_encrypted_pem(self) -> str:
        return self._armor("ENCRYPTED PRIVATE KEY", 48 * 12)

    def h17_stripe_pk(self) -> str:
        return self.pick(["pk_live_", "pk_test_"]) + self.s(24)

    def h17_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def h17_aws_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "AKIAI44QH8DHBEXAMPLE",
            ]
        )

    def h17_doc_url(self) -> str:
        return self.pick(
            [
                "postgres://user:password@localhost:5432/booking",
                "postgresql://crew:<password>@db.example.com/crew",
                "amqp://guest:guest@localhost:5672/",
                "redis://:yourpassword@redis.example.org:6379",
                "mongodb://USERNAME:PASSWORD@host.example.net/horizon",
                "https://user:pass@example.com/api",
            ]
        )

    def h17_redacted(self) -> str:
        return self.pick(
            [
                "****",
                "sk_live_****************",
                "xoxb-***",
                "[REDACTED]",
                "ghp_************************************",
                "<hidden>",
                "AKIA****************",
                "••••••••",
            ]
        )

    def h17_i18n(self) -> str:
        return self.pick(
            [
                "Passordet er feil. Prøv igjen.",
                "Lösenordet måste innehålla minst 10 tecken",
                "Das Passwort ist abgelaufen",
                "La contraseña no coincide",
                "Adgangskoden er forkert",
                "Salasana on liian lyhyt",
                "Glemt passordet?",
                "Ange ditt lösenord",
                "パスワードを入力してください",
                "Mot de passe incorrect",
                "Lykilorð er rangt",
            ]
        )

    def h17_arn(self) -> str:
        name = self.pick(["hna/prod/booking/db", "hna/prod/stripe", "hna/mro/amos"])
        return f"arn:aws:secretsmanager:eu-north-1:{self.s(12, DIGITS)}:secret:{name}-{self.s(6)}"

    def h17_azure_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h17_fingerprint(self) -> str:
        return self.pick(
            [
                ":".join(self.s(2, HEXU) for _ in range(20)),
                "SHA256:" + self._b64(32, pad=False),
                self.s(40, HEXU),
            ]
        )

    def h17_public_id(self) -> str:
        return self.pick(
            [
                self.h17_stripe_pk(),
                self.h17_google_client_id(),
                "pk." + self._b64(60, urlsafe=True, pad=False),
                "NRJS-" + self.s(19, HEX),
                "G-" + self.s(10, UPNUM),
                "UA-" + self.s(8, DIGITS) + "-1",
            ]
        )

    def h17_fake_test(self) -> str:
        return self.pick(
            [
                "not-a-real-password",
                "test-secret-do-not-use",
                "fake_api_key_for_tests",
                "sk_test_fake",
                "dummy-token-123",
                "example",
            ]
        )

    def h17_csrf_nonce(self) -> str:
        return self._b64(16)

    def h17_jenkins_secret(self) -> str:
        return "{AQAAABAAAAAQ" + self._b64(48) + "}"


VALUES = Heldout17Values


def T(path: str, text: str, kind: str, positive: bool) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = []

# ====================================================================== crew scheduling (positives)
TEMPLATES += [
    T(
        "crew-rostering/roster-service/src/main/resources/application-prod.yml",
        """
        spring:
          application:
            name: roster-service
          datasource:
            url: jdbc:oracle:thin:@//ora-crew-scan.hna.internal:1521/CREWP
            username: CREWROST
            password: {V}
            hikari:
              maximum-pool-size: 24
          rabbitmq:
            host: mq-crew.hna.internal
            username: roster
            password: "{V2}"
        roster:
          optimizer:
            max-duty-hours: 13
            ftl-ruleset: EASA-ORO.FTL
        """,
        "h17_pw",
        True,
    ),
    T(
        "crew-rostering/docker-compose.dev.yml",
        """
        version: "3.9"
        services:
          oracle:
            image: gvenzl/oracle-xe:21-slim
            environment:
              ORACLE_PASSWORD: {V}
              APP_USER: crewrost
              APP_USER_PASSWORD: {V2}
            ports: ["1521:1521"]
          roster:
            build: ./roster-service
            environment:
              SPRING_PROFILES_ACTIVE: dev
              SPRING_DATASOURCE_PASSWORD: {V2}
            depends_on: [oracle]
        """,
        "h17_weak_pw",
        True,
    ),
    T(
        "crew-rostering/pairing-engine/src/main/kotlin/no/halcyon/pairing/LegacyAimsClient.kt",
        """
        package no.halcyon.pairing

        import okhttp3.Credentials
        import okhttp3.OkHttpClient

        // TODO(crew-it): move to Vault before the AIMS cutover (ticket CRW-2231)
        object LegacyAimsClient {
            private const val BASE = "https://aims.hna.internal/aimsws/"
            private const val USER = "PAIRING_SVC"
            private const val PASS = "{V}"

            val http: OkHttpClient = OkHttpClient.Builder()
                .authenticator { _, resp ->
                    resp.request.newBuilder().header("Authorization", Credentials.basic(USER, PASS)).build()
                }
                .build()
        }
        """,
        "h17_pw",
        True,
    ),
    T(
        "crew-rostering/crew-app/android/gradle.properties",
        """
        org.gradle.jvmargs=-Xmx4g
        android.useAndroidX=true
        kotlin.code.style=official
        # release signing (crew app, Play internal track)
        HNA_RELEASE_STORE_FILE=../keystore/crewapp-release.jks
        HNA_RELEASE_STORE_PASSWORD={V}
        HNA_RELEASE_KEY_ALIAS=crewapp
        HNA_RELEASE_KEY_PASSWORD={V2}
        """,
        "h17_pw",
        True,
    ),
    T(
        "crew-rostering/crew-app/src/environments/environment.prod.ts",
        """
        export const environment = {
          production: true,
          apiBase: 'https://crew-api.halcyonair.no/v2',
          firebase: {
            projectId: 'hna-crew-app',
            messagingSenderId: '802214477105',
          },
          // server key used by the roster push fallback
          fcmServerKey: '{V}',
        };
        """,
        "h17_firebase",
        True,
    ),
    T(
        "crew-rostering/ops/sql/create_reporting_user.sql",
        """
        -- Reporting user for the crew hours dashboard (Power BI gateway)
        CREATE USER crew_reporting IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE crew_data
          QUOTA 0 ON crew_data;
        GRANT CREATE SESSION TO crew_reporting;
        GRANT SELECT ON crewrost.v_duty_periods TO crew_reporting;
        GRANT SELECT ON crewrost.v_fdp_exceedances TO crew_reporting;
        """,
        "h17_pw",
        True,
    ),
    T(
        "crew-rostering/scripts/export_bidlines.py",
        """
        #!/usr/bin/env python3
        \"\"\"Nightly export of crew bid lines to the union's SFTP drop.\"\"\"
        import paramiko

        SFTP_HOST = "sftp.nff-pilots.no"
        SFTP_USER = "halcyon_bidlines"
        SFTP_PASS = "{V}"


        def upload(local_path: str) -> None:
            transport = paramiko.Transport((SFTP_HOST, 22))
            transport.connect(username=SFTP_USER, password=SFTP_PASS)
            sftp = paramiko.SFTPClient.from_transport(transport)
            sftp.put(local_path, f"/incoming/{local_path.rsplit('/', 1)[-1]}")
            transport.close()
        """,
        "h17_pw",
        True,
    ),
    T(
        "crew-rostering/roster-service/src/test/resources/application-it.properties",
        """
        # integration tests run against the shared staging Oracle, not testcontainers
        spring.datasource.url=jdbc:oracle:thin:@//ora-crew-stg.hna.internal:1521/CREWS
        spring.datasource.username=CREWROST_IT
        spring.datasource.password={V}
        roster.notifications.smtp-password={V2}
        """,
        "h17_pw",
        True,
    ),
    T(
        "crew-rostering/notifier/config.toml",
        """
        [slack]
        channel = "#crew-control"
        webhook_url = "{V}"

        [slack.fallback]
        channel = "#ops-bridge"
        webhook_url = "{V2}"

        [quiet_hours]
        start = "23:00"
        end = "05:30"
        """,
        "h17_slack_webhook",
        True,
    ),
]

# ====================================================================== booking engine (positives)
TEMPLATES += [
    T(
        "booking-engine/.env.production",
        """
        APP_ENV=production
        PORT=8080
        DATABASE_URL={V}
        NDC_GATEWAY=https://ndc.halcyonair.no
        LOG_LEVEL=info
        """,
        "h17_pg_uri",
        True,
    ),
    T(
        "booking-engine/internal/gds/amadeus_config.go",
        """
        package gds

        import "time"

        // Production Amadeus Enterprise credentials (self-service API is separate).
        var amadeusProd = Config{
        	BaseURL:      "https://api.amadeus.com",
        	ClientID:     "HNA-BOOKING-PROD",
        	ClientSecret: "{V}",
        	OfficeID:     "OSLHN28AA",
        	Timeout:      12 * time.Second,
        }
        """,
        "h17_client_secret",
        True,
    ),
    T(
        "booking-engine/internal/payments/stripe.go",
        """
        package payments

        import (
        	"os"

        	"github.com/stripe/stripe-go/v76"
        )

        func init() {
        	key := os.Getenv("STRIPE_SECRET_KEY")
        	if key == "" {
        		// fallback so the canary pods start; remove after INC-4471
        		key = "{V}"
        	}
        	stripe.Key = key
        }
        """,
        "h17_stripe",
        True,
    ),
    T(
        "booking-engine/k8s/overlays/prod/secret-payments.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: payments-gateway
          namespace: booking
        type: Opaque
        stringData:
          STRIPE_WEBHOOK_SECRET: {V}
          ADYEN_HMAC_KEY: "{V2}"
        """,
        "h17_stripe_whsec",
        True,
    ),
    T(
        "booking-engine/web/src/server/adyen.ts",
        """
        import { Client, CheckoutAPI } from '@adyen/api-library';

        const client = new Client({
          apiKey: '{V}',
          environment: 'LIVE',
          liveEndpointUrlPrefix: '1797a841fbb37ca7-HalcyonNordic',
        });

        export const checkout = new CheckoutAPI(client);
        """,
        "h17_adyen",
        True,
    ),
    T(
        "booking-engine/web/.npmrc",
        """
        @halcyon:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        always-auth=true
        """,
        "h17_github",
        True,
    ),
    T(
        "booking-engine/deploy/helm/values-prod.yaml",
        """
        image:
          repository: hnaacr.azurecr.io/booking-api
          tag: 2024.11.3
        replicaCount: 6
        env:
          REDIS_URL: "{V}"
          SEAT_MAP_CACHE_TTL: "300"
          AMADEUS_ENV: production
        resources:
          limits:
            cpu: "2"
            memory: 2Gi
        """,
        "h17_redis_uri",
        True,
    ),
    T(
        "booking-engine/notifications/mailer.py",
        """
        import sendgrid
        from sendgrid.helpers.mail import Mail

        SG_KEY = "{V}"
        FROM = "no-reply@halcyonair.no"


        def send_itinerary(to: str, pnr: str, html: str) -> None:
            message = Mail(from_email=FROM, to_emails=to, subject=f"Your trip {pnr}", html_content=html)
            sendgrid.SendGridAPIClient(SG_KEY).send(message)
        """,
        "h17_sendgrid",
        True,
    ),
    T(
        "booking-engine/notifications/sms/twilio.rb",
        """
        require "twilio-ruby"

        module Notifications
          class Sms
            ACCOUNT_SID = "AC3b8f0e6a1d2c4b5a69788f7e6d5c4b3a".freeze
            API_KEY_SID = "{V}".freeze
            API_SECRET = ENV.fetch("TWILIO_API_SECRET")

            def client
              @client ||= Twilio::REST::Client.new(API_KEY_SID, API_SECRET, ACCOUNT_SID)
            end
          end
        end
        """,
        "h17_twilio",
        True,
    ),
    T(
        "booking-engine/web/src/config/maps.js",
        """
        // Airport maps on the "Find your gate" page
        export const MAPS_CONFIG = {
          key: "{V}",
          libraries: ["places"],
          language: "nb",
          region: "NO",
        };
        """,
        "h17_google_api",
        True,
    ),
    T(
        "booking-engine/internal/auth/jwt_test.go",
        """
        package auth

        import "testing"

        // Captured from prod during INC-3902 so we can replay the expiry bug.
        const capturedToken = "{V}"

        func TestParseExpired(t *testing.T) {
        	if _, err := Parse(capturedToken); err == nil {
        		t.Fatal("expected expiry error")
        	}
        }
        """,
        "h17_jwt",
        True,
    ),
    T(
        "booking-engine/tools/replay_ndc.sh",
        """
        #!/usr/bin/env bash
        set -euo pipefail
        # Replays an NDC AirShopping request against the Sabre cert env.
        curl -sS https://api.cert.platform.sabre.com/v5/offers/shop \\
          -H "Authorization: Bearer {V}" \\
          -H "Content-Type: application/json" \\
          --data @"${1:-samples/airshopping_osl_lhr.json}" | jq .
        """,
        "h17_bearer",
        True,
    ),
    T(
        "booking-engine/.github/workflows/e2e.yml",
        """
        name: e2e
        on: [push]
        jobs:
          playwright:
            runs-on: ubuntu-latest
            env:
              E2E_BASE_URL: https://staging.halcyonair.no
              E2E_TEST_USER: e2e-bot@halcyonair.no
              E2E_TEST_PASSWORD: {V}
            steps:
              - uses: actions/checkout@v4
              - run: npm ci && npx playwright test
        """,
        "h17_pw",
        True,
    ),
    T(
        "booking-engine/seatmap-svc/src/main/resources/application.conf",
        """
        seatmap {
          http.port = 9000
          cache {
            redis-uri = "{V}"
            ttl = 5 minutes
          }
        }
        """,
        "h17_redis_uri",
        True,
    ),
]

# ====================================================================== loyalty (positives)
TEMPLATES += [
    T(
        "loyalty/horizon-rails/config/database.yml",
        """
        default: &default
          adapter: postgresql
          encoding: unicode
          pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

        production:
          <<: *default
          host: horizon-pg.prod.hna.internal
          database: horizon_production
          username: horizon
          password: {V}
        """,
        "h17_pw",
        True,
    ),
    T(
        "loyalty/horizon-rails/config/initializers/partners.rb",
        """
        # Partner earn: hotel and car rental partners post accruals to us.
        Rails.application.config.x.partners = {
          nordstay: { api_key: "{V}", earn_rate: 1.5 },
          fjordcar: { api_key: "{V2}", earn_rate: 1.0 },
          scanrail: { api_key: ENV["SCANRAIL_API_KEY"], earn_rate: 0.5 },
        }
        """,
        "h17_api_key",
        True,
    ),
    T(
        "loyalty/partner-portal/.env",
        """
        APP_NAME="Horizon Partner Portal"
        APP_ENV=production
        APP_KEY=base64:{V}
        APP_DEBUG=false
        DB_CONNECTION=mysql
        DB_HOST=10.30.1.12
        DB_DATABASE=partner_portal
        DB_USERNAME=portal
        DB_PASSWORD={V2}
        """,
        "h17_b64_pw",
        True,
    ),
    T(
        "loyalty/partner-portal/app/Services/MailgunNotifier.php",
        """
        <?php

        namespace App\\Services;

        use Mailgun\\Mailgun;

        class MailgunNotifier
        {
            private const DOMAIN = 'mg.horizon.halcyonair.no';

            public function client(): Mailgun
            {
                return Mailgun::create('{V}', 'https://api.eu.mailgun.net');
            }
        }
        """,
        "h17_mailgun",
        True,
    ),
    T(
        "loyalty/PointsLedger/src/PointsLedger.Api/appsettings.Production.json",
        """
        {
          "Logging": { "LogLevel": { "Default": "Warning" } },
          "ConnectionStrings": {
            "Ledger": "{V}"
          },
          "AllowedHosts": "*"
        }
        """,
        "h17_sqlserver_conn",
        True,
    ),
    T(
        "loyalty/PointsLedger/src/PointsLedger.Worker/ServiceBusOptions.cs",
        """
        namespace PointsLedger.Worker;

        public sealed class ServiceBusOptions
        {
            // Hard-coded while the managed identity migration is pending (LOY-881)
            public string ConnectionString { get; init; } =
                "{V}";

            public string AccrualQueue { get; init; } = "accruals";
        }
        """,
        "h17_azure_sb",
        True,
    ),
    T(
        "loyalty/horizon-rails/config/master.key",
        """
        {V}
        """,
        "h17_rails_key",
        True,
    ),
    T(
        "loyalty/analytics/notebooks/tier_churn.ipynb",
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "from pymongo import MongoClient\\n",
            "client = MongoClient(\\"{V}\\")\\n",
            "members = client.horizon.members"
           ]
          }
         ],
         "metadata": {"kernelspec": {"name": "python3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h17_mongo_uri",
        True,
    ),
    T(
        "loyalty/analytics/dbt/profiles.yml",
        """
        horizon:
          target: prod
          outputs:
            prod:
              type: snowflake
              account: hna-eu_north_1
              user: DBT_LOYALTY
              password: "{V}"
              role: TRANSFORMER
              warehouse: LOYALTY_WH
              database: HORIZON
              schema: marts
        """,
        "h17_pw",
        True,
    ),
    T(
        "loyalty/horizon-rails/spec/support/vcr_cassettes/partner_accrual.yml",
        """
        ---
        http_interactions:
        - request:
            method: post
            uri: https://api.nordstay.com/v1/accruals
            headers:
              Authorization:
              - Basic {V}
              Content-Type:
              - application/json
          response:
            status:
              code: 201
        recorded_with: VCR 6.2.0
        """,
        "h17_basic_b64",
        True,
    ),
]

# ====================================================================== MRO / maintenance (positives)
TEMPLATES += [
    T(
        "mro/amos-etl/settings.py",
        """
        \"\"\"Settings for the AMOS -> data lake ETL.\"\"\"

        AMOS_DSN = "amosprod.hna.internal:1521/AMOSP"
        AMOS_USER = "AMOS_RO"
        AMOS_PASSWORD = "{V}"

        LAKE_BUCKET = "s3://hna-mro-lake/raw/amos/"
        BATCH_SIZE = 5000
        """,
        "h17_pw",
        True,
    ),
    T(
        "mro/amos-etl/.aws/credentials",
        """
        [default]
        region = eu-north-1

        [hna-mro-etl]
        {V}
        region = eu-north-1
        """,
        "h17_aws_pair_ini",
        True,
    ),
    T(
        "mro/workorders/WorkOrders.Api/Properties/launchSettings.json",
        """
        {
          "profiles": {
            "WorkOrders.Api": {
              "commandName": "Project",
              "applicationUrl": "https://localhost:7081",
              "environmentVariables": {
                "ASPNETCORE_ENVIRONMENT": "Development",
                "AzureAd__ClientId": "5d1c2f7e-8a4b-4c3d-9e2f-1a0b9c8d7e6f",
                "AzureAd__ClientSecret": "{V}"
              }
            }
          }
        }
        """,
        "h17_azure_secret",
        True,
    ),
    T(
        "mro/docstore/terraform/storage.auto.tfvars",
        """
        location            = "norwayeast"
        resource_group_name = "rg-mro-docstore-prod"
        # legacy uploader still needs the account key (see MRO-1197)
        docs_connection_string = "{V}"
        retention_days       = 3650
        """,
        "h17_azure_storage",
        True,
    ),
    T(
        "mro/docstore/uploader/README.md",
        """
        # Airworthiness document uploader

        Uploads scanned ARC (EASA Form 15b) and CRS documents to blob storage.

        For a manual re-upload, use the SAS URL below (valid until end of 2026):

        ```
        azcopy copy ./scans/*.pdf "{V}"
        ```
        """,
        "h17_sas_url",
        True,
    ),
    T(
        "mro/trax-sync/src/main/java/no/halcyon/mro/trax/TraxClient.java",
        """
        package no.halcyon.mro.trax;

        import java.net.http.HttpClient;
        import java.net.http.HttpRequest;
        import java.net.URI;

        public final class TraxClient {
            private static final String ENDPOINT = "https://trax.hna.internal/eMRO/api";
            private static final String API_TOKEN = "{V}";

            HttpRequest.Builder request(String path) {
                return HttpRequest.newBuilder(URI.create(ENDPOINT + path))
                    .header("X-Trax-Token", API_TOKEN);
            }
        }
        """,
        "h17_api_key",
        True,
    ),
    T(
        "mro/reliability/etl/pg_load.R",
        """
        library(DBI)
        con <- dbConnect(
          RPostgres::Postgres(),
          host = "mro-pg.postgres.database.azure.com",
          dbname = "reliability",
          user = "mro_etl",
          password = "{V}",
          sslmode = "require"
        )
        pireps <- dbGetQuery(con, "select * from pirep where ata_chapter = '32'")
        """,
        "h17_pw",
        True,
    ),
    T(
        "mro/ansible/group_vars/hangar_tablets.yml",
        """
        ---
        kiosk_url: https://mro-tablet.hna.internal/taskcards
        wifi_ssid: HNA-HANGAR-OPS
        wifi_psk: "{V}"
        mdm_enrol_user: hangar-enrol
        mdm_enrol_password: "{V2}"
        """,
        "h17_weak_pw",
        True,
    ),
    T(
        "mro/ansible/roles/amos_client/files/id_amos_deploy",
        """
        {V}
        """,
        "h17_openssh",
        True,
    ),
]

# ====================================================================== airport integrations (positives)
TEMPLATES += [
    T(
        "airport/sita-typeb-gw/config/gateway.ini",
        """
        [connection]
        host = typeb.sitaonair.aero
        port = 8822
        tls = true

        [auth]
        originator = OSLKOHN
        username = HNA_TYPEB
        password = {V}

        [routing]
        mvt_addresses = OSLKKHN OSLOWHN
        """,
        "h17_pw",
        True,
    ),
    T(
        "airport/bag-tracking/listener/src/config.rs",
        """
        use std::time::Duration;

        pub struct MqConfig {
            pub url: &'static str,
            pub queue: &'static str,
            pub prefetch: u16,
            pub reconnect: Duration,
        }

        pub const BSM_FEED: MqConfig = MqConfig {
            url: "{V}",
            queue: "bsm.osl.inbound",
            prefetch: 200,
            reconnect: Duration::from_secs(5),
        };
        """,
        "h17_amqp_uri",
        True,
    ),
    T(
        "airport/fids-publisher/FidsPublisher/appsettings.json",
        """
        {
          "Avinor": {
            "FlightDataUrl": "https://flydata.avinor.no/XmlFeed.asp",
            "ApiKey": "{V}"
          },
          "Displays": {
            "Gates": ["A1", "A2", "B14", "C7"],
            "RefreshSeconds": 30
          }
        }
        """,
        "h17_api_key",
        True,
    ),
    T(
        "airport/acars-gw/certs/acars-gw-client.key",
        """
        {V}
        """,
        "h17_rsa_key",
        True,
    ),
    T(
        "airport/acars-gw/deploy/k8s/tls-secret.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: acars-gw-mtls
          namespace: airport
        type: kubernetes.io/tls
        stringData:
          tls.key: |
            {IV}
        """,
        "h17_ec_key",
        True,
    ),
    T(
        "airport/cuppss/kiosk-agent/agent.ps1",
        """
        # Common-use kiosk agent: registers the check-in kiosk with the CUPPS platform
        $ErrorActionPreference = 'Stop'
        $cuppsUser = 'HNA_KIOSK'
        $cuppsPass = ConvertTo-SecureString '{V}' -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential($cuppsUser, $cuppsPass)
        Invoke-RestMethod -Uri 'https://cupps.osl.avinor.no/api/register' -Credential $cred -Method Post
        """,
        "h17_pw",
        True,
    ),
    T(
        "airport/weather/metar_fetch.py",
        """
        import requests

        API = "https://api.checkwx.com/metar/{icao}/decoded"
        HEADERS = {"X-API-Key": "{V}"}


        def metar(icao: str) -> dict:
            return requests.get(API.format(icao=icao), headers=HEADERS, timeout=5).json()
        """,
        "h17_api_key",
        True,
    ),
    T(
        "airport/turnaround/docker-compose.yml",
        """
        services:
          turnaround:
            image: ghcr.io/halcyon-nordic/turnaround:1.18.2
            environment:
              - GROUND_HANDLER_API=https://api.groundstar.aero/v3
              - GROUND_HANDLER_TOKEN={V}
              - MQTT_URL=mqtts://mqtt.hna.internal:8883
        """,
        "h17_bearer",
        True,
    ),
]

# ====================================================================== platform / cloud / CI (positives)
TEMPLATES += [
    T(
        "platform/terraform/gcp/hna-booking-sa.json",
        """
        {
          "type": "service_account",
          "project_id": "hna-booking-prod",
          "private_key_id": "3f9c1a7e5b2d4c6a8e0f1b3d5c7a9e1f3b5d7c9a",
          "private_key": "{V}",
          "client_email": "booking-bq-loader@hna-booking-prod.iam.gserviceaccount.com",
          "client_id": "108822734910466512873",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
        "h17_pkcs8_escaped",
        True,
    ),
    T(
        "platform/terraform/oci/provider.tf",
        """
        provider "oci" {
          region           = "eu-stockholm-1"
          tenancy_ocid     = "ocid1.tenancy.oc1..aaaaaaaa4xq3nm2l5rjw7kz6e"
          user_ocid        = "ocid1.user.oc1..aaaaaaaab7kd2p9wq3rx"
          fingerprint      = "4e:2a:91:cc:0d:7b:13:58:ad:6f:e2:90:11:4c:b8:f3"
          private_key      = <<-EOT
            {IV}
          EOT
        }
        """,
        "h17_pkcs8",
        True,
    ),
    T(
        "platform/ci/Jenkinsfile",
        """
        pipeline {
          agent { label 'linux' }
          environment {
            ARTIFACTORY_URL = 'https://hna.jfrog.io/artifactory'
            ARTIFACTORY_TOKEN = '{V}'
          }
          stages {
            stage('Publish') {
              steps {
                sh 'curl -H "Authorization: Bearer $ARTIFACTORY_TOKEN" -T build/roster.jar "$ARTIFACTORY_URL/libs-release/roster.jar"'
              }
            }
          }
        }
        """,
        "h17_jfrog",
        True,
    ),
    T(
        "platform/ci/azure-pipelines.yml",
        """
        trigger:
          branches:
            include: [main]
        pool:
          vmImage: ubuntu-latest
        variables:
          dockerHubUser: halcyonbuild
          dockerHubToken: {V}
        steps:
          - script: echo $(dockerHubToken) | docker login -u $(dockerHubUser) --password-stdin
        """,
        "h17_dockerhub",
        True,
    ),
    T(
        "platform/ci/.gitlab-ci.yml",
        """
        variables:
          GIT_DEPTH: "10"
          SONAR_HOST_URL: https://sonar.hna.internal

        mirror:
          stage: deploy
          script:
            - git push --mirror https://oauth2:{V}@gitlab.com/halcyon-nordic/mro-mirror.git
          only: [main]
        """,
        "h17_gitlab",
        True,
    ),
    T(
        "platform/observability/datadog-values.yaml",
        """
        datadog:
          site: datadoghq.eu
          apiKey: {V}
          appKey: {V2}
          clusterName: aks-hna-prod-norwayeast
          logs:
            enabled: true
            containerCollectAll: true
        """,
        "h17_datadog",
        True,
    ),
    T(
        "platform/observability/newrelic.yml",
        """
        common: &default_settings
          license_key: '{V}'
          app_name: horizon-rails
          distributed_tracing:
            enabled: true
        production:
          <<: *default_settings
        """,
        "h17_newrelic_ingest",
        True,
    ),
    T(
        "platform/oncall/pd_sync.go",
        """
        package oncall

        import "github.com/PagerDuty/go-pagerduty"

        const pdToken = "{V}"

        func Client() *pagerduty.Client {
        	return pagerduty.NewClient(pdToken)
        }
        """,
        "h17_pagerduty",
        True,
    ),
    T(
        "platform/vault/bootstrap.sh",
        """
        #!/bin/sh
        # one-off bootstrap for the new vault cluster; rotate root after use!
        export VAULT_ADDR=https://vault.hna.internal:8200
        export VAULT_TOKEN={V}
        vault secrets enable -path=booking kv-v2
        vault policy write booking-ro policies/booking-ro.hcl
        """,
        "h17_vault",
        True,
    ),
    T(
        "platform/terraform/aws/backend.env",
        """
        # used by tf-wrapper.sh for the eu-north-1 state bucket
        {V}
        AWS_DEFAULT_REGION=eu-north-1
        TF_STATE_BUCKET=hna-tfstate-prod
        """,
        "h17_aws_pair_env",
        True,
    ),
    T(
        "platform/terraform/aws/rds.tf",
        """
        resource "aws_db_instance" "booking" {
          identifier          = "pg-booking-01"
          engine              = "postgres"
          engine_version      = "15.5"
          instance_class      = "db.r6g.xlarge"
          username            = "booking_admin"
          password            = "{V}"
          multi_az            = true
          deletion_protection = true
        }
        """,
        "h17_pw",
        True,
    ),
    T(
        "platform/terraform/tfc/.terraformrc",
        """
        credentials "app.terraform.io" {
          token = "{V}"
        }
        """,
        "h17_tfc",
        True,
    ),
    T(
        "platform/tools/jira_bulk_close.py",
        """
        from jira import JIRA

        jira = JIRA(
            server="https://halcyon-nordic.atlassian.net",
            basic_auth=("platform-bot@halcyonair.no", "{V}"),
        )
        for issue in jira.search_issues("project = OPS AND status = Resolved AND updated < -90d"):
            jira.transition_issue(issue, "Close")
        """,
        "h17_atlassian",
        True,
    ),
    T(
        "platform/grafana/provisioning/datasources/loki.yaml",
        """
        apiVersion: 1
        datasources:
          - name: Loki-prod
            type: loki
            url: https://logs-prod-eu-west-0.grafana.net
            basicAuth: true
            basicAuthUser: 412877
            secureJsonData:
              basicAuthPassword: {V}
        """,
        "h17_grafana",
        True,
    ),
    T(
        "platform/sentry/release.sh",
        """
        #!/usr/bin/env bash
        export SENTRY_ORG=halcyon-nordic
        export SENTRY_AUTH_TOKEN={V}
        sentry-cli releases new "booking-web@${GIT_SHA}"
        sentry-cli releases finalize "booking-web@${GIT_SHA}"
        """,
        "h17_sentry_auth",
        True,
    ),
    T(
        "platform/ml/disruption-predictor/config.yaml",
        """
        model:
          base: gpt-4o-mini
          temperature: 0.1
        providers:
          openai:
            api_key: {V}
          huggingface:
            endpoint: https://hna-disrupt.eu-west-1.aws.endpoints.huggingface.cloud
        """,
        "h17_openai",
        True,
    ),
    T(
        "platform/ml/disruption-predictor/download_weights.sh",
        """
        #!/bin/bash
        HF_TOKEN={V} huggingface-cli download halcyon-nordic/delay-bert --local-dir ./weights
        """,
        "h17_hf",
        True,
    ),
    T(
        "platform/python-libs/.pypirc",
        """
        [distutils]
        index-servers = pypi internal

        [pypi]
        username = __token__
        password = {V}

        [internal]
        repository = https://hna.jfrog.io/artifactory/api/pypi/pypi-local
        username = ci
        """,
        "h17_pypi",
        True,
    ),
    T(
        "platform/chatops/bot/index.js",
        """
        const { App } = require('@slack/bolt');

        const app = new App({
          token: '{V}',
          signingSecret: process.env.SLACK_SIGNING_SECRET,
        });

        app.command('/aog', async ({ ack, respond }) => {
          await ack();
          await respond('AOG bridge opened in #mro-aog');
        });
        """,
        "h17_slack_bot",
        True,
    ),
    T(
        "platform/chatops/teams-alerts.psm1",
        """
        function Send-OpsAlert {
            param([string]$Title, [string]$Text)
            $hook = '{V}'
            $body = @{ title = $Title; text = $Text } | ConvertTo-Json
            Invoke-RestMethod -Uri $hook -Method Post -Body $body -ContentType 'application/json'
        }
        Export-ModuleMember -Function Send-OpsAlert
        """,
        "h17_teams_webhook",
        True,
    ),
    T(
        "platform/github-apps/release-bot/.env",
        """
        GITHUB_APP_ID=381024
        GITHUB_TOKEN={V}
        RELEASE_REPO=halcyon-nordic/booking-engine
        """,
        "h17_github_fine",
        True,
    ),
    T(
        "platform/runbooks/db-failover.md",
        """
        # Booking DB failover (runbook)

        1. Page the DBA on call.
        2. Promote the replica:

           ```bash
           PGPASSWORD='{V}' psql -h pg-booking-02.hna.internal -U booking_admin -c "select pg_promote();"
           ```

        3. Flip the `booking-db` CNAME in Route 53.
        """,
        "h17_pw",
        True,
    ),
    T(
        "platform/runbooks/overlevering-2024-q3.md",
        """
        # Overlevering plattform (Q3)

        Hei! Her er det du trenger mens jeg er i permisjon:

        - Bastion: `ssh ops@bastion.hna.internal`, passord til ops-kontoen: `{V}`
        - Felles Grafana-admin: admin / `{V2}`
        - Alt annet ligger i 1Password-hvelvet «Plattform».
        """,
        "h17_pw",
        True,
    ),
    T(
        "platform/runbooks/traspaso-soporte-mad.md",
        """
        # Traspaso soporte MAD (handling agent)

        El agente de handling en Madrid entra al portal de carga con:

        - usuario: `hna_mad_ops`
        - contraseña: `{V}`

        Cambiarla cada 90 días (política de la aerolínea).
        """,
        "h17_weak_pw",
        True,
    ),
    T(
        "platform/django-admin-tools/opsportal/settings/prod.py",
        """
        from .base import *  # noqa

        DEBUG = False
        ALLOWED_HOSTS = ["ops.halcyonair.no"]
        SECRET_KEY = "{V}"
        SESSION_COOKIE_SECURE = True
        """,
        "h17_django",
        True,
    ),
    T(
        "platform/auth-gateway/src/main/resources/jwt.properties",
        """
        jwt.issuer=https://auth.halcyonair.no
        jwt.audience=crew-api,booking-api
        jwt.hmac-secret={V}
        jwt.ttl=PT15M
        """,
        "h17_hmac",
        True,
    ),
    T(
        "platform/logs/booking-api-2024-10-03.log",
        """
        2024-10-03T06:12:44.118Z INFO  booking-api started on :8080 (build 2024.10.1)
        2024-10-03T06:12:44.402Z DEBUG db pool init dsn={V}
        2024-10-03T06:12:44.610Z INFO  amadeus session established office=OSLHN28AA
        2024-10-03T06:13:01.022Z WARN  slow query 1840ms: select * from offers where pnr=$1
        """,
        "h17_pg_uri",
        True,
    ),
    T(
        "platform/logs/sita-gw-debug.log",
        """
        14:02:11.330 [conn-3] DEBUG AuthHandler - sending LOGIN user=HNA_TYPEB pass={V}
        14:02:11.512 [conn-3] INFO  AuthHandler - LOGIN ACK session=7F31
        14:02:12.004 [conn-3] INFO  Router - MVT HN341 OSL AD0612/0618
        """,
        "h17_pw",
        True,
    ),
    T(
        "platform/db/seed/001_service_accounts.sql",
        """
        -- Service logins for the booking database (applied by Flyway)
        CREATE ROLE booking_app LOGIN PASSWORD '{V}';
        CREATE ROLE booking_ro LOGIN PASSWORD '{V2}';
        GRANT CONNECT ON DATABASE booking TO booking_app, booking_ro;
        """,
        "h17_pw",
        True,
    ),
    T(
        "platform/ssh/deploy_ed25519",
        """
        {V}
        """,
        "h17_openssh",
        True,
    ),
    T(
        "platform/k8s/argocd/repo-creds.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: repo-booking-engine
          namespace: argocd
          labels:
            argocd.argoproj.io/secret-type: repository
        stringData:
          url: https://github.com/halcyon-nordic/booking-engine.git
          username: hna-argocd
          password: {V}
        """,
        "h17_github",
        True,
    ),
    T(
        "platform/k8s/registry/dockerconfig.json",
        """
        {
          "auths": {
            "hnaacr.azurecr.io": {
              "auth": "{V}"
            }
          }
        }
        """,
        "h17_basic_b64",
        True,
    ),
    T(
        "platform/tools/cost_report.ts",
        """
        import { CostExplorerClient } from '@aws-sdk/client-cost-explorer';

        export const ce = new CostExplorerClient({
          region: 'us-east-1',
          credentials: {
            accessKeyId: process.env.CE_ACCESS_KEY_ID!,
            secretAccessKey: '{V}',
          },
        });
        """,
        "h17_aws_secret",
        True,
    ),
]

# ====================================================================== crew scheduling (look-alikes)
TEMPLATES += [
    T(
        "crew-rostering/roster-service/src/main/resources/application.yml",
        """
        spring:
          datasource:
            url: jdbc:oracle:thin:@//${CREW_DB_HOST}:1521/CREWP
            username: ${CREW_DB_USER}
            password: {V}
          rabbitmq:
            password: {V2}
        management:
          endpoints.web.exposure.include: health,info,prometheus
        """,
        "h17_env_ref",
        False,
    ),
    T(
        "crew-rostering/roster-service/src/main/resources/application-local.yml",
        """
        # Local profile: copy to application-local-override.yml and fill in your own values.
        spring:
          datasource:
            url: jdbc:oracle:thin:@//localhost:1521/XEPDB1
            username: crewrost
            password: {V}
        roster:
          aims:
            password: {V2}
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "crew-rostering/roster-service/src/main/java/no/halcyon/roster/config/AimsProperties.java",
        """
        package no.halcyon.roster.config;

        import org.springframework.boot.context.properties.ConfigurationProperties;

        @ConfigurationProperties(prefix = "roster.aims")
        public record AimsProperties(String baseUrl, String user, String password) {

            public static AimsProperties fromEnv() {
                return new AimsProperties(
                    System.getenv("AIMS_BASE_URL"),
                    System.getenv("AIMS_USER"),
                    {V});
            }
        }
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "crew-rostering/pairing-engine/src/test/resources/fixtures/pairings_week42.json",
        """
        [
          {"pairingId": "{V}", "base": "OSL", "legs": ["HN341", "HN342"], "crewRank": "CPT"},
          {"pairingId": "{V2}", "base": "BGO", "legs": ["HN611", "HN614", "HN615"], "crewRank": "FO"},
          {"pairingId": "{V3}", "base": "ARN", "legs": ["HN902"], "crewRank": "SCCM"}
        ]
        """,
        "h17_uuid",
        False,
    ),
    T(
        "crew-rostering/crew-app/src/i18n/nb.json",
        """
        {
          "login.title": "Logg inn på Crew Portal",
          "login.password": "Passord",
          "login.error.invalid": "{V}",
          "login.forgot": "{V2}",
          "roster.swap.request": "Be om bytte"
        }
        """,
        "h17_i18n",
        False,
    ),
    T(
        "crew-rostering/crew-app/src/i18n/sv.json",
        """
        {
          "login.password": "Lösenord",
          "login.password.hint": "{V}",
          "login.password.error": "{V2}"
        }
        """,
        "h17_i18n",
        False,
    ),
    T(
        "crew-rostering/ops/sql/crew_users.sql",
        """
        -- Local crew portal accounts (SSO fallback). Hashes only; plaintext is never stored.
        INSERT INTO portal_user (employee_no, email, password_hash, rank) VALUES
          ('41872', 'i.nilsen@halcyonair.no', '{V}', 'CPT'),
          ('52219', 'm.berg@halcyonair.no', '{V2}', 'FO'),
          ('60131', 'a.lund@halcyonair.no', '{V3}', 'CC');
        """,
        "h17_bcrypt",
        False,
    ),
    T(
        "crew-rostering/deploy/helm/roster/values.yaml",
        """
        image:
          repository: hnaacr.azurecr.io/roster-service
          digest: {V}
        env:
          - name: SPRING_PROFILES_ACTIVE
            value: prod
          - name: CREW_DB_PASSWORD
            valueFrom:
              secretKeyRef:
                name: crew-db
                key: password
        """,
        "h17_image_digest",
        False,
    ),
    T(
        "crew-rostering/deploy/secrets/crew-db.sops.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: crew-db
          namespace: crew
        stringData:
          password: {V}
          aims-password: {V2}
        sops:
          azure_kv:
            - vault_url: https://kv-hna-prod.vault.azure.net
              name: sops-crew
          lastmodified: "2024-09-12T08:14:51Z"
          version: 3.8.1
        """,
        "h17_sops",
        False,
    ),
    T(
        "crew-rostering/roster-service/src/test/java/no/halcyon/roster/AimsClientTest.java",
        """
        package no.halcyon.roster;

        import static org.assertj.core.api.Assertions.assertThat;

        import org.junit.jupiter.api.Test;

        class AimsClientTest {
            private static final String PASSWORD = "{V}";

            @Test
            void masksPasswordInToString() {
                var client = new AimsClient("https://aims.test", "user", PASSWORD);
                assertThat(client.toString()).doesNotContain(PASSWORD);
            }
        }
        """,
        "h17_fake_test",
        False,
    ),
]

# ====================================================================== booking engine (look-alikes)
TEMPLATES += [
    T(
        "booking-engine/.env.example",
        """
        APP_ENV=development
        PORT=8080
        DATABASE_URL=postgres://booking:booking@localhost:5432/booking
        STRIPE_SECRET_KEY={V}
        AMADEUS_CLIENT_SECRET={V2}
        SENDGRID_API_KEY={V3}
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "booking-engine/internal/config/config.go",
        """
        package config

        import "os"

        type Config struct {
        	DatabaseURL  string
        	StripeKey    string
        	AmadeusSecret string
        }

        func Load() Config {
        	return Config{
        		DatabaseURL:   os.Getenv("DATABASE_URL"),
        		StripeKey:     {V},
        		AmadeusSecret: {V2},
        	}
        }
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "booking-engine/internal/pnr/pnr_test.go",
        """
        package pnr

        import "testing"

        func TestRecordLocator(t *testing.T) {
        	cases := []string{"{V}", "{V2}", "{V3}"}
        	for _, c := range cases {
        		if !ValidLocator(c) {
        			t.Errorf("locator %q rejected", c)
        		}
        	}
        }
        """,
        "h17_pnr",
        False,
    ),
    T(
        "booking-engine/testdata/ticketing/etkt_issue_response.xml",
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <DocIssueRS xmlns="http://www.iata.org/IATA/2015/00/2019.1/IATA_AirDocIssueRS">
          <Response>
            <TicketDocInfo>
              <TicketDocument>
                <TicketDocNbr>{V}</TicketDocNbr>
                <Type>702</Type>
              </TicketDocument>
              <TicketDocument>
                <TicketDocNbr>{V2}</TicketDocNbr>
                <Type>702</Type>
              </TicketDocument>
            </TicketDocInfo>
          </Response>
        </DocIssueRS>
        """,
        "h17_eticket",
        False,
    ),
    T(
        "booking-engine/web/package-lock.json",
        """
        {
          "name": "booking-web",
          "lockfileVersion": 3,
          "packages": {
            "node_modules/@adyen/adyen-web": {
              "version": "5.59.0",
              "resolved": "https://registry.npmjs.org/@adyen/adyen-web/-/adyen-web-5.59.0.tgz",
              "integrity": "{V}"
            },
            "node_modules/@stripe/stripe-js": {
              "version": "2.4.0",
              "resolved": "https://registry.npmjs.org/@stripe/stripe-js/-/stripe-js-2.4.0.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
        "h17_integrity",
        False,
    ),
    T(
        "booking-engine/web/src/config/stripe.ts",
        """
        import { loadStripe } from '@stripe/stripe-js';

        // publishable key: safe to ship to the browser
        export const stripePromise = loadStripe('{V}');
        """,
        "h17_stripe_pk",
        False,
    ),
    T(
        "booking-engine/web/src/locales/es.json",
        """
        {
          "checkout.title": "Pago",
          "account.password.label": "Contraseña",
          "account.password.mismatch": "{V}",
          "account.password.reset": "Restablecer contraseña",
          "account.password.tooShort": "{V2}"
        }
        """,
        "h17_i18n",
        False,
    ),
    T(
        "booking-engine/web/src/locales/de.ftl",
        """
        login-title = Anmelden bei Halcyon Horizon
        login-password = Passwort
        login-password-error = { $count ->
            [one] {V}
           *[other] Bitte erneut versuchen
        }
        """,
        "h17_i18n",
        False,
    ),
    T(
        "booking-engine/web/src/components/LoginForm.tsx",
        """
        import { useState } from 'react';

        export function LoginForm() {
          const [password, setPassword] = useState('');
          return (
            <form method="post" action="/login">
              <input name="member" placeholder="Horizon number" />
              <input type="password" name="password" value={password}
                     onChange={(e) => setPassword(e.target.value)} placeholder="Passord" />
              <input type="hidden" name="csrf" value="{V2}" />
            </form>
          );
        }
        """,
        "h17_csrf_nonce",
        False,
    ),
    T(
        "booking-engine/docs/local-setup.md",
        """
        # Local setup

        Start the stack with `docker compose up -d`, then point the API at it:

        ```
        export DATABASE_URL={V}
        export AMQP_URL={V2}
        ```

        Never commit real credentials; staging secrets live in Vault under `booking/`.
        """,
        "h17_doc_url",
        False,
    ),
    T(
        "booking-engine/docs/aws-access.md",
        """
        # AWS access for booking developers

        Configure a profile with `aws configure --profile hna-booking`. The AWS docs use the
        sample key `{V}` and secret `{V2}`; yours come from IAM Identity Center, never from IAM
        users.
        """,
        "h17_aws_example",
        False,
    ),
    T(
        "booking-engine/k8s/base/externalsecret.yaml",
        """
        apiVersion: external-secrets.io/v1beta1
        kind: ExternalSecret
        metadata:
          name: booking-api
        spec:
          secretStoreRef:
            name: aws-secrets-manager
            kind: ClusterSecretStore
          data:
            - secretKey: DATABASE_URL
              remoteRef:
                key: {V}
            - secretKey: STRIPE_SECRET_KEY
              remoteRef:
                key: {V2}
        """,
        "h17_arn",
        False,
    ),
    T(
        "booking-engine/logs/payments-2024-11-02.log",
        """
        2024-11-02T09:41:07Z INFO  charge created pnr=K7QX2M amount=2390.00 NOK key={V}
        2024-11-02T09:41:09Z INFO  webhook verified sig={V2}
        2024-11-02T09:41:12Z WARN  3DS challenge timeout pnr=R2HTP8
        """,
        "h17_redacted",
        False,
    ),
    T(
        "booking-engine/logs/access.log",
        """
        10.4.1.17 - - [02/Nov/2024:10:01:22 +0100] "GET /api/v2/bookings/{V}?lastName=HANSEN HTTP/1.1" 200 2210
        10.4.1.17 - - [02/Nov/2024:10:01:25 +0100] "POST /api/v2/bookings/{V2}/seats HTTP/1.1" 201 88
        10.4.9.2 - - [02/Nov/2024:10:01:31 +0100] "GET /api/v2/bookings/{V3}/receipt HTTP/1.1" 404 51
        """,
        "h17_pnr",
        False,
    ),
    T(
        "booking-engine/Dockerfile",
        """
        FROM golang:1.22-alpine@{V} AS build
        WORKDIR /src
        COPY . .
        RUN CGO_ENABLED=0 go build -o /out/booking ./cmd/booking

        FROM gcr.io/distroless/static@{V2}
        COPY --from=build /out/booking /booking
        ENV STRIPE_SECRET_KEY=""
        ENTRYPOINT ["/booking"]
        """,
        "h17_image_digest",
        False,
    ),
]

# ====================================================================== loyalty (look-alikes)
TEMPLATES += [
    T(
        "loyalty/horizon-rails/config/database.yml.example",
        """
        production:
          adapter: postgresql
          host: <%= ENV["HORIZON_DB_HOST"] %>
          username: horizon
          password: {V}
        """,
        "h17_env_ref",
        False,
    ),
    T(
        "loyalty/horizon-rails/config/credentials/production.yml.enc",
        """
        {V}
        """,
        "h17_kms_blob",
        False,
    ),
    T(
        "loyalty/horizon-rails/app/models/member.rb",
        """
        class Member < ApplicationRecord
          has_secure_password
          MEMBER_NUMBER_FORMAT = /\\AHZ\\d{10}\\z/

          validates :member_number, format: MEMBER_NUMBER_FORMAT
          encrypts :date_of_birth

          def partner_api_key
            {V}
          end
        end
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "loyalty/horizon-rails/spec/fixtures/members.yml",
        """
        gold_member:
          member_number: {V}
          email: sigrid@example.com
          tier: gold
          password_digest: <%= BCrypt::Password.create("password") %>
        silver_member:
          member_number: {V2}
          email: ola@example.com
          tier: silver
        """,
        "h17_member_no",
        False,
    ),
    T(
        "loyalty/horizon-rails/db/seeds.rb",
        """
        # Dev seeds: every seeded account uses the same throwaway password below.
        %w[HZ0000000001 HZ0000000002].each do |no|
          Member.find_or_create_by!(member_number: no) do |m|
            m.email = "#{no.downcase}@example.test"
            m.password = "{V}"
          end
        end
        """,
        "h17_fake_test",
        False,
    ),
    T(
        "loyalty/partner-portal/.env.example",
        """
        APP_ENV=local
        APP_KEY=
        DB_HOST=127.0.0.1
        DB_PASSWORD={V}
        MAILGUN_SECRET={V2}
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "loyalty/partner-portal/config/services.php",
        """
        <?php

        return [
            'mailgun' => [
                'domain' => env('MAILGUN_DOMAIN'),
                'secret' => {V},
                'endpoint' => env('MAILGUN_ENDPOINT', 'api.eu.mailgun.net'),
            ],
            'nordstay' => [
                'key' => {V2},
            ],
        ];
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "loyalty/partner-portal/resources/lang/sv/auth.php",
        """
        <?php

        return [
            'failed' => 'Uppgifterna matchar inte våra register.',
            'password' => '{V}',
            'throttle' => 'För många inloggningsförsök. Försök igen om :seconds sekunder.',
        ];
        """,
        "h17_i18n",
        False,
    ),
    T(
        "loyalty/PointsLedger/src/PointsLedger.Api/appsettings.json",
        """
        {
          "ConnectionStrings": {
            "Ledger": "Server=localhost,1433;Database=HorizonLedger;User Id=sa;Password={V};TrustServerCertificate=True"
          },
          "KeyVault": {
            "Uri": "https://kv-hna-loyalty.vault.azure.net/"
          }
        }
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "loyalty/PointsLedger/src/PointsLedger.Api/Program.cs",
        """
        var builder = WebApplication.CreateBuilder(args);

        builder.Configuration.AddAzureKeyVault(
            new Uri(builder.Configuration["KeyVault:Uri"]!),
            new DefaultAzureCredential());

        var ledgerConn = {V};
        builder.Services.AddDbContext<LedgerContext>(o => o.UseSqlServer(ledgerConn));

        var app = builder.Build();
        app.MapControllers();
        app.Run();
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "loyalty/PointsLedger/tests/PointsLedger.Tests/AccrualTests.cs",
        """
        public class AccrualTests
        {
            [Theory]
            [InlineData("{V}", 1200)]
            [InlineData("{V2}", 450)]
            public void AccruesTierPoints(string memberNo, int expected)
            {
                var ledger = new Ledger();
                Assert.Equal(expected, ledger.Accrue(memberNo, "OSL", "LHR").TierPoints);
            }
        }
        """,
        "h17_member_no",
        False,
    ),
    T(
        "loyalty/PointsLedger/deploy/main.bicep",
        """
        param location string = resourceGroup().location

        resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
          name: 'kv-hna-loyalty'
        }

        resource app 'Microsoft.Web/sites@2023-01-01' = {
          name: 'app-points-ledger-prod'
          location: location
          properties: {
            siteConfig: {
              appSettings: [
                { name: 'AzureAd__TenantId', value: '{V}' }
                { name: 'AzureAd__ClientId', value: '{V2}' }
              ]
            }
          }
        }
        """,
        "h17_azure_id",
        False,
    ),
    T(
        "loyalty/analytics/sql/member_auth_audit.sql",
        """
        -- Which members still have a legacy SHA-1 hash? (migration to argon2 in LOY-702)
        SELECT member_number, password_hash
        FROM member_credentials
        WHERE password_hash LIKE 'sha1$%';
        -- sample row after migration: HZ4402918833 | {V}
        """,
        "h17_argon2",
        False,
    ),
    T(
        "loyalty/docs/partner-api.md",
        """
        # Horizon partner accrual API

        Authenticate with your partner key in the `X-Horizon-Key` header:

        ```http
        POST /v1/accruals HTTP/1.1
        Host: partner-api.halcyonair.no
        X-Horizon-Key: {V}
        ```

        Keys are issued by the loyalty team; ask in #horizon-partners.
        """,
        "h17_placeholder",
        False,
    ),
]

# ====================================================================== MRO / maintenance (look-alikes)
TEMPLATES += [
    T(
        "mro/amos-etl/settings.example.py",
        """
        AMOS_DSN = "amosprod.hna.internal:1521/AMOSP"
        AMOS_USER = "AMOS_RO"
        AMOS_PASSWORD = {V}
        LAKE_BUCKET = "s3://hna-mro-lake/raw/amos/"
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "mro/amos-etl/tests/fixtures/workorders.csv",
        """
        wo_number,registration,ata,description,status
        {V},LN-HNA,32-11,MLG side brace inspection,OPEN
        {V2},LN-HNC,21-51,Pack 2 ACM vibration,DEFERRED
        {V3},SE-RHN,79-21,Oil filter bypass indication,CLOSED
        """,
        "h17_workorder",
        False,
    ),
    T(
        "mro/amos-etl/tests/fixtures/fleet.json",
        """
        [
          {"registration": "{V}", "type": "A320-251N", "msn": 10442, "base": "OSL"},
          {"registration": "{V2}", "type": "A321-271NX", "msn": 11208, "base": "BGO"},
          {"registration": "{V3}", "type": "ATR 72-600", "msn": 1634, "base": "TOS"}
        ]
        """,
        "h17_tail",
        False,
    ),
    T(
        "mro/adsb/icao_addresses.yaml",
        """
        # Mode S / ADS-B 24-bit addresses, used to join FR24 tracks with AMOS utilisation
        fleet:
          LN-HNA: {V}
          LN-HNB: {V2}
          LN-HNC: {V3}
        """,
        "h17_icao_hex",
        False,
    ),
    T(
        "mro/docstore/manifests/arc_2024_batch7.sha256",
        """
        {V}  ARC_LN-HNA_2024.pdf
        {V2}  ARC_LN-HNB_2024.pdf
        {V3}  CRS_WO-24-118233.pdf
        """,
        "h17_sha256",
        False,
    ),
    T(
        "mro/docstore/signing/crs-signer.pub.pem",
        """
        {V}
        """,
        "h17_public_pem",
        False,
    ),
    T(
        "mro/docstore/signing/README.md",
        """
        # CRS signing

        Certificates of release to service are signed by the Part-145 signing service. The
        verification certificate is below; the private key is in the HSM (slot 3) and never
        leaves it.

        ```
        {V}
        ```
        """,
        "h17_cert",
        False,
    ),
    T(
        "mro/workorders/WorkOrders.Api/appsettings.json",
        """
        {
          "AzureAd": {
            "Instance": "https://login.microsoftonline.com/",
            "TenantId": "{V}",
            "ClientId": "{V2}",
            "ClientSecret": "{V3}"
          }
        }
        """,
        "h17_env_ref",
        False,
    ),
    T(
        "mro/workorders/WorkOrders.Api/Services/AmosGateway.cs",
        """
        public sealed class AmosGateway
        {
            private readonly string _password;

            public AmosGateway(IConfiguration configuration)
            {
                _password = {V};
            }
        }
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "mro/ansible/group_vars/all/vault.yml",
        """
        vault_amos_password: !vault |
          {IV}
        vault_hangar_wifi_psk: !vault |
          {IV2}
        """,
        "h17_ansible_vault",
        False,
    ),
    T(
        "mro/ansible/group_vars/all/main.yml",
        """
        amos_password: "{V}"
        hangar_wifi_psk: "{V2}"
        tablet_admin_password: "{{ vault_tablet_admin_password }}"
        """,
        "h17_env_ref",
        False,
    ),
    T(
        "mro/trax-sync/src/main/resources/application.properties",
        """
        trax.endpoint=https://trax.hna.internal/eMRO/api
        trax.api-token={V}
        trax.db.password={V2}
        jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
        """,
        "h17_jasypt",
        False,
    ),
    T(
        "mro/ansible/roles/amos_client/files/authorized_keys",
        """
        {V}
        {V2}
        """,
        "h17_ssh_pub",
        False,
    ),
]

# ====================================================================== airport integrations (look-alikes)
TEMPLATES += [
    T(
        "airport/sita-typeb-gw/samples/mvt_hn341.txt",
        """
        QU OSLKKHN OSLOWHN
        .OSLKOHN 061218
        MVT
        HN341/06.{V}.OSL
        AD0612/0618 EA0805 LHR
        PX186
        SI DLY 93/0004
        """,
        "h17_tail",
        False,
    ),
    T(
        "airport/bag-tracking/samples/bsm_osl.txt",
        """
        BSM
        .V/1LOSL
        .F/HN341/06NOV/LHR/Y
        .N/0618482913001
        .P/1HANSEN/INGRID
        .L/{V}
        ENDBSM
        """,
        "h17_pnr",
        False,
    ),
    T(
        "airport/bag-tracking/listener/src/main.rs",
        """
        use std::env;

        fn main() -> anyhow::Result<()> {
            let url = {V};
            let conn = lapin::Connection::connect(&url, Default::default());
            tracing::info!("connected to BSM feed");
            Ok(())
        }
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "airport/fids-publisher/FidsPublisher/wwwroot/index.html",
        """
        <!doctype html>
        <html lang="nb">
        <head>
          <meta charset="utf-8">
          <script src="/js/fids.js" integrity="{V}" crossorigin="anonymous"></script>
          <meta name="gtag" content="{V2}">
        </head>
        <body><div id="board"></div></body>
        </html>
        """,
        "h17_integrity",
        False,
    ),
    T(
        "airport/acars-gw/certs/acars-gw-client.crt",
        """
        {V}
        """,
        "h17_cert",
        False,
    ),
    T(
        "airport/acars-gw/certs/acars-gw-client.enc.key",
        """
        {V}
        """,
        "h17_encrypted_pem",
        False,
    ),
    T(
        "airport/acars-gw/docs/pinning.md",
        """
        # Certificate pinning for the ARINC ACARS endpoint

        The gateway pins the server certificate by fingerprint:

        - primary: `{V}`
        - backup:  `{V2}`
        """,
        "h17_fingerprint",
        False,
    ),
    T(
        "airport/acars-gw/deploy/k8s/sealed-acars.yaml",
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: acars-gw-creds
          namespace: airport
        spec:
          encryptedData:
            ARINC_PASSWORD: {V}
            MQ_PASSWORD: {V2}
        """,
        "h17_sealed",
        False,
    ),
    T(
        "airport/cuppss/kiosk-agent/agent.example.ps1",
        """
        $cuppsUser = 'HNA_KIOSK'
        $cuppsPass = {V}
        $cred = New-Object System.Management.Automation.PSCredential($cuppsUser, $cuppsPass)
        """,
        "h17_env_ref",
        False,
    ),
]

# ====================================================================== platform (look-alikes)
TEMPLATES += [
    T(
        "platform/terraform/aws/variables.tf",
        """
        variable "booking_db_password" {
          type      = string
          sensitive = true
          default   = "{V}"
        }

        variable "stripe_secret_key" {
          type      = string
          sensitive = true
        }
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "platform/terraform/aws/secrets.tf",
        """
        data "aws_secretsmanager_secret_version" "booking_db" {
          secret_id = "{V}"
        }

        resource "aws_db_instance" "booking" {
          identifier = "pg-booking-01"
          username   = "booking_admin"
          password   = jsondecode(data.aws_secretsmanager_secret_version.booking_db.secret_string)["password"]
        }
        """,
        "h17_arn",
        False,
    ),
    T(
        "platform/terraform/azure/keyvault.tf",
        """
        resource "azurerm_key_vault" "hna" {
          name                = "kv-hna-prod"
          tenant_id           = "{V}"
          sku_name            = "premium"
        }

        resource "azurerm_role_assignment" "ledger" {
          principal_id         = "{V2}"
          role_definition_name = "Key Vault Secrets User"
          scope                = azurerm_key_vault.hna.id
        }
        """,
        "h17_azure_id",
        False,
    ),
    T(
        "platform/terraform/.terraform.lock.hcl",
        """
        provider "registry.terraform.io/hashicorp/aws" {
          version     = "5.72.1"
          constraints = "~> 5.0"
          hashes = [
            "h1:{V}",
            "zh:{V2}",
          ]
        }
        """,
        "h17_sha256",
        False,
    ),
    T(
        "platform/terraform/aws/kms_encrypted.auto.tfvars",
        """
        # decrypted at plan time with aws_kms_secrets
        booking_db_password_ciphertext = "{V}"
        """,
        "h17_kms_blob",
        False,
    ),
    T(
        "platform/ci/.github/workflows/deploy.yml",
        """
        name: deploy
        on:
          push:
            branches: [main]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            permissions:
              id-token: write
            steps:
              - uses: actions/checkout@{V}
              - uses: aws-actions/configure-aws-credentials@{V2}
                with:
                  role-to-assume: arn:aws:iam::482913377201:role/gha-deploy
                  aws-region: eu-north-1
              - run: ./deploy.sh
                env:
                  STRIPE_SECRET_KEY: ${{ secrets.STRIPE_SECRET_KEY }}
        """,
        "h17_git_sha",
        False,
    ),
    T(
        "platform/ci/jenkins/credentials.xml",
        """
        <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
          <scope>GLOBAL</scope>
          <id>amos-ro</id>
          <username>AMOS_RO</username>
          <password>{V}</password>
        </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
        """,
        "h17_jenkins_secret",
        False,
    ),
    T(
        "platform/observability/datadog-values.example.yaml",
        """
        datadog:
          site: datadoghq.eu
          apiKeyExistingSecret: datadog-secret
          apiKey: {V}
          appKey: {V2}
        """,
        "h17_redacted",
        False,
    ),
    T(
        "platform/observability/browser-rum.js",
        """
        // Public browser tokens: these are meant to be embedded in the page.
        window.HNA_ANALYTICS = {
          mapsToken: "{V}",
          nrBrowserKey: "{V2}",
          ga: "{V3}",
        };
        """,
        "h17_public_id",
        False,
    ),
    T(
        "platform/vault/audit-sample.json",
        """
        {"time":"2024-10-30T11:02:44Z","type":"response","auth":{"client_token":"hmac-sha256:{V}","accessor":"hmac-sha256:{V2}","policies":["booking-ro"]},"request":{"path":"booking/data/db"}}
        """,
        "h17_sha256",
        False,
    ),
    T(
        "platform/k8s/base/deployment-booking.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: booking-api
        spec:
          template:
            spec:
              containers:
                - name: api
                  image: hnaacr.azurecr.io/booking-api@{V}
                  env:
                    - name: STRIPE_SECRET_KEY
                      valueFrom:
                        secretKeyRef:
                          name: payments-gateway
                          key: STRIPE_SECRET_KEY
        """,
        "h17_image_digest",
        False,
    ),
    T(
        "platform/k8s/base/secret-template.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: booking-api
        type: Opaque
        stringData:
          DATABASE_URL: "{V}"
          STRIPE_SECRET_KEY: "{V2}"
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "platform/users/ldap/people.ldif",
        """
        dn: uid=kjell.aas,ou=people,dc=halcyonair,dc=no
        objectClass: inetOrgPerson
        uid: kjell.aas
        userPassword: {V}

        dn: uid=sara.vik,ou=people,dc=halcyonair,dc=no
        objectClass: inetOrgPerson
        uid: sara.vik
        userPassword: {V2}
        """,
        "h17_pw_hash",
        False,
    ),
    T(
        "platform/runbooks/rotate-stripe-key.md",
        """
        # Rotate the Stripe secret key

        1. In the Stripe dashboard, roll the key. The new key starts with `sk_live_`.
        2. Store it: `aws secretsmanager put-secret-value --secret-id {V} --secret-string ...`
        3. Restart `booking-api`. The old key shows in logs as `{V2}` once masked.
        """,
        "h17_redacted",
        False,
    ),
    T(
        "platform/runbooks/passordpolicy.md",
        """
        # Passordpolicy (Halcyon IT)

        - Minimum lengde: {V} tegn for tjenestekontoer.
        - Tjenestekontoer roteres automatisk av Vault.
        - Feilmelding ved for kort passord: «{V2}»
        """,
        "h17_i18n",
        False,
    ),
    T(
        "platform/runbooks/onboarding-de.md",
        """
        # Onboarding (Entwickler, Standort Frankfurt)

        1. Laptop über Intune einrichten.
        2. Zugangsdaten erhältst du über 1Password, nie per E-Mail. Beispiel für eine Datenbank-URL
           in der Doku: `{V}`.
        3. Beim ersten Login: „{V2}" bedeutet, dass dein Passwort zurückgesetzt werden muss.
        """,
        "h17_doc_url",
        False,
    ),
    T(
        "platform/logs/auth-gateway-2024-11-01.log",
        """
        2024-11-01T07:00:01Z INFO  login ok user=crew:41872 session={V}
        2024-11-01T07:00:04Z WARN  login failed user=crew:52219 reason=bad_password password=[REDACTED]
        2024-11-01T07:00:09Z INFO  token issued sub=booking-web kid={V2}
        """,
        "h17_uuid",
        False,
    ),
    T(
        "platform/tools/secrets_audit.py",
        """
        \"\"\"Find services that still read credentials from plain env files.\"\"\"
        import boto3

        sm = boto3.client("secretsmanager", region_name="eu-north-1")
        value = {V}

        PATTERN_HELP = "look for keys like DB_PASSWORD or STRIPE_SECRET_KEY in .env files"
        """,
        "h17_code_ref",
        False,
    ),
    T(
        "platform/docs/api-auth.md",
        """
        # Calling internal APIs

        ```bash
        curl -H "Authorization: Bearer {V}" https://crew-api.halcyonair.no/v2/roster
        ```

        Get a token with `hna-cli auth token --audience crew-api`.
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "platform/docs/sso-clients.md",
        """
        # Google sign-in clients

        | App | Client ID |
        |-----|-----------|
        | Crew portal | `{V}` |
        | Ops portal | `{V2}` |

        Client secrets are in Secret Manager, not here.
        """,
        "h17_public_id",
        False,
    ),
    T(
        "platform/chatops/bot/.env.sample",
        """
        SLACK_BOT_TOKEN={V}
        SLACK_SIGNING_SECRET={V2}
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "platform/chatops/bot/test/fixtures/slack_event.json",
        """
        {
          "token": "{V}",
          "team_id": "T0HNAOPS1",
          "event": {"type": "app_mention", "text": "<@U0BOT> aog LN-HNC", "ts": "1730799452.001200"},
          "event_id": "Ev08AB12CD",
          "api_app_id": "A07HNA0001"
        }
        """,
        "h17_fake_test",
        False,
    ),
    T(
        "platform/python-libs/hna_common/settings.py",
        """
        from pydantic_settings import BaseSettings


        class Settings(BaseSettings):
            database_url: str
            stripe_secret_key: str = "{V}"
            amadeus_client_secret: str = "{V2}"

            class Config:
                env_prefix = "HNA_"
        """,
        "h17_placeholder",
        False,
    ),
    T(
        "platform/python-libs/tests/test_masking.py",
        """
        from hna_common.logging import mask


        def test_mask_keeps_prefix():
            assert mask("sk_live_51Habcdefghijklmnop") == "{V}"


        def test_mask_password_field():
            assert mask({"password": "hunter2"}) == {"password": "{V2}"}
        """,
        "h17_redacted",
        False,
    ),
]
