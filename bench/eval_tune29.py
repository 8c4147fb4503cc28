"""Blind part ``tune29``: Halvorsen State University (HSU) and its online-learning arm, HSU Online.

Files come from the repositories of a university's central IT, research computing and teaching
staff: the learning management systems (a Moodle farm with local plugins, web-service scripts,
moodle-docker and cron; Canvas for HSU Online with ``database.yml``/``security.yml``, LTI 1.3
tools, TA grading scripts against the Canvas API, a Google Classroom sync), the student-
information system (a Banner-style Oracle schema, Ellucian Ethos integrations, .NET and Java
batch jobs, MuleSoft flows, a legacy Perl extract, a Spark job), the research-computing HPC
cluster (Slurm ``slurmdbd.conf`` and ``slurmrestd`` tokens, SSSD and OpenLDAP, Globus SDK
transfer scripts, Open OnDemand, Ansible, sbatch jobs holding ML-platform tokens, SSH keys),
lab instruments and their data pipelines (instrument PCs writing to SMB and MinIO, REDCap
exports, Airflow connections, Nextflow on AWS Batch, R/MATLAB/Julia analysis code, Azure blob
uploads), the student mobile apps (Android Gradle signing and Mapbox downloads, Flutter tests,
Swift, iOS plists, Firebase push), the alumni fundraising CRM (Salesforce/sfdx, Blackbaud SKY
API, Stripe and PayPal giving pages, Mailchimp, SendGrid), campus IT (PaperCut printing,
FreeRADIUS and eduroam, IoT Wi-Fi keys, door access controllers, switch configs, Duo, Okta,
Entra ID, Shibboleth and CAS, PowerShell AD scripts) and course repositories written by
students and teaching assistants in many languages (Java, C, OCaml, Haskell, Rust, Go, R
Markdown, notebooks, Terraform, Dockerfiles, Kubernetes), plus runbooks, chat exports, helpdesk
tickets, logs and HTML wiki pages. Written blind (without seeing the scanner, its rules or
other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: references to environment
variables, CI secrets and secret stores in each language, placeholders and redactions, password
hashes (bcrypt, ``{SSHA}``, sha512-crypt, Cisco type 5/9, Django pbkdf2, argon2, SCRAM, MySQL
``*`` hashes, Apache ``$apr1$``), values encrypted or obfuscated at rest (Ansible Vault, SOPS,
sealed secrets, MuleSoft secure properties, SSSD obfuscated passwords), public material
(certificates, LTI JWKS moduli, SSH public keys, reCAPTCHA site keys, Mapbox ``pk.`` tokens,
Stripe publishable keys, OAuth client ids), identifiers shaped like secrets (Globus collection
UUIDs, Ethos GUIDs, ORCID iDs with valid check digits, Canvas developer-key ids, student ids,
DOIs, MAC addresses, checksums, git SHAs, LFS object ids, SRI hashes, CSRF/session keys, badge
numbers), UI text about passwords, documented example credentials, credentials on documentation
hosts, and test values that say they are fake.
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
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!#%*-_=+.@"


class Tune29Values(evalset.Values):
    """Value generators of the tune29 part; every name starts with ``t29_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "griffin",
            "lecture",
            "syllabus",
            "quadrangle",
            "provost",
            "seminar",
            "tutorial",
            "varsity",
            "beacon",
            "campus",
            "library",
            "rotunda",
            "cluster",
            "alumni",
        ]
        self.users = [
            "moodle",
            "canvas_app",
            "sis_batch",
            "slurm",
            "globus_svc",
            "labdata",
            "advance",
            "papercut",
            "radius",
            "ta_grader",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t29_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def t29_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t29_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t29_util_rsa_der(self) -> bytes:
        head = bytes.fromhex("308204a40201000282010100")
        return head + self.rng.randbytes(1180)

    def t29_util_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Hsu" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "$" + self.s(4, DIGITS)

    # ------------------------------------------------------------------ positives: passwords
    def t29_pw(self) -> str:
        return self.t29_util_pw()

    def t29_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Password1!",
                    "Moodle123",
                    "hsu2023",
                    "Griffins1",
                    "Qwerty123!",
                    "letmein22",
                    "Student2024",
                    "canvas123",
                    "Fall2024!",
                ]
            )
        if shape == 1:
            return "Halvorsen" + str(self.rng.randrange(2015, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return (
            self.pick(["Spring", "Summer", "Fall", "Winter"])
            + str(self.rng.randrange(2019, 2026))
            + self.pick(["", "!"])
        )

    def t29_vendor_pw(self) -> str:
        return self.pick(
            [
                "7654321",
                "ubnt",
                "Zebra123",
                "sysadm",
                "1111",
                "admin123",
                "Admin@123",
                "Lab1nstr!",
                "ThermoFisher1",
                "agilent",
                "hp_admin",
            ]
        )

    def t29_ldap_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.t29_weak_pw()
        return self.t29_util_pw()

    def t29_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def t29_shared_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(self.rng.randrange(16, 33), ALNUM)
        if shape == 1:
            return "hsu" + self.pick(self.words) + self.s(5, ALNUM) + self.pick(list("!#%"))
        return "-".join(self.pick(self.words) for _ in range(3)) + self.s(2, DIGITS)

    def t29_b64_pw(self) -> str:
        return base64.b64encode(self.t29_util_pw().encode()).decode()

    def t29_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-integrations", "hsu-deploy"])
        return base64.b64encode(f"{user}:{self.t29_util_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: LMS / SIS
    def t29_moodle_token(self) -> str:
        return self.s(32, HEX)

    def t29_canvas_token(self) -> str:
        return f"{self.pick(['7', '1', '15', '4511'])}~{self.s(64, ALNUM)}"

    def t29_ethos_key(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t29_redcap(self) -> str:
        return self.s(32, HEXU)

    def t29_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .decode()
                .rstrip("=")
            )

        header = part({"alg": "HS256", "typ": "JWT"})
        now = 1727000000 + self.rng.randrange(10**7)
        payload = part(
            {
                "exp": now + 86400 * 365,
                "iat": now,
                "sun": self.pick(["slurmrest", "ood", "xdmod", "hsu-portal"]),
            }
        )
        return f"{header}.{payload}.{self.t29_util_b64(32, urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ positives: vendor tokens
    def t29_github(self) -> str:
        return self.t29_util_crc_token(self.pick(["ghp", "ghp", "gho"]))

    def t29_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def t29_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t29_npm(self) -> str:
        return self.t29_util_crc_token("npm")

    def t29_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(self.rng.randrange(120, 160), URLSAFE)

    def t29_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t29_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def t29_discord_webhook(self) -> str:
        return (
            f"https://discord.com/api/webhooks/{self.rng.randrange(10**17, 10**18 * 2)}/"
            f"{self.s(68, URLSAFE)}"
        )

    def t29_teams_webhook(self) -> str:
        def u() -> str:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

        return (
            f"https://halvorsen.webhook.office.com/webhookb2/{u()}@{u()}/IncomingWebhook/"
            f"{self.s(32, HEX)}/{u()}/V2{self.s(43, URLSAFE)}"
        )

    def t29_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    def t29_aws_pair_groovy(self) -> str:
        key_id = "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return f"accessKey = '{key_id}'\nsecretKey = '{self.t29_aws_secret()}'"

    def t29_spotify_secret(self) -> str:
        return self.s(32, HEX)

    def t29_aws_pair_hcl(self) -> str:
        key_id = "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return f'access_key = "{key_id}"\nsecret_key = "{self.t29_aws_secret()}"'

    def t29_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t29_gcp_oauth_secret(self) -> str:
        return "GOCSPX-" + self.s(28, URLSAFE)

    def t29_gcp_sa_key(self) -> str:
        der = bytes.fromhex(
            "308204bd020100300d06092a864886f70d0101010500048204a7308204a30201000282010100"
        )
        pem = self.t29_util_armor("PRIVATE KEY", der + self.rng.randbytes(1150))
        return pem.replace("\n", "\\n") + "\\n"

    def t29_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t29_rsa_key(self) -> str:
        return self.t29_util_armor("RSA PRIVATE KEY", self.t29_util_rsa_der())

    def t29_pkcs8_key(self) -> str:
        der = bytes.fromhex(
            "308204be020100300d06092a864886f70d0101010500048204a8308204a40201000282010100"
        )
        return self.t29_util_armor("PRIVATE KEY", der + self.rng.randbytes(1180))

    def t29_openssh_key(self) -> str:
        raw = (
            b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00\x00\x00\x00\x01"
            b"\x00\x00\x003\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 "
            + self.rng.randbytes(32)
            + b"\x00\x00\x00\x98"
            + self.rng.randbytes(200)
        )
        return self.t29_util_armor("OPENSSH PRIVATE KEY", raw, width=70)

    def t29_stripe(self) -> str:
        return self.pick(["sk_live_", "rk_live_"]) + "51" + self.s(96, ALNUM)

    def t29_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t29_mailchimp(self) -> str:
        return f"{self.s(32, HEX)}-us{self.rng.randrange(1, 21)}"

    def t29_paypal_secret(self) -> str:
        return "E" + self.s(79, URLSAFE)

    def t29_globus_secret(self) -> str:
        return self.t29_util_b64(32)

    def t29_sf_token(self) -> str:
        return f"00D{self.s(12, ALNUM)}!AQ{self.s(1, ALNUM)}A{self.s(92, ALNUM + '._')}"

    def t29_sfdx_url(self) -> str:
        return (
            f"force://PlatformCLI::5Aep861{self.s(80, ALNUM + '._')}"
            f"@halvorsen-advancement.my.salesforce.com"
        )

    def t29_sky_key(self) -> str:
        return self.s(32, HEX)

    def t29_duo_skey(self) -> str:
        return self.s(40, ALNUM)

    def t29_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def t29_zoom_secret(self) -> str:
        return self.s(32, ALNUM)

    def t29_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t29_anthropic(self) -> str:
        return f"sk-ant-api03-{self.s(93, URLSAFE)}AA"

    def t29_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def t29_kaggle(self) -> str:
        return self.s(32, HEX)

    def t29_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 8 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def t29_django_key(self) -> str:
        return "django-insecure-" * self.rng.randrange(2) + self.s(
            50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)"
        )

    def t29_flask_key(self) -> str:
        return self.pick([self.s(64, HEX), self.t29_util_b64(32, urlsafe=True, pad=False)])

    def t29_azure_storage(self) -> str:
        return (
            "DefaultEndpointsProtocol=https;AccountName=hsu"
            + self.pick(["labdata", "lmsbackup", "instrumentraw", "alumnimedia"])
            + ";AccountKey="
            + self.t29_util_b64(64)
            + ";EndpointSuffix=core.windows.net"
        )

    def t29_ms_secret(self) -> str:
        return f"{self.s(3, ALNUM)}{self.s(1, DIGITS)}Q~{self.s(34, ALNUM + '_~.-')}"

    def t29_mapbox_sk(self) -> str:
        body = (
            base64.urlsafe_b64encode(('{"u":"hsumaps","a":"' + self.s(25, LOWNUM) + '"}').encode())
            .decode()
            .rstrip("=")
        )
        return f"sk.{body}.{self.s(22, URLSAFE)}"

    def t29_vault(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t29_sentry_user(self) -> str:
        return "sntryu_" + self.s(64, HEX)

    def t29_uuid_secret(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t29_papercut_token(self) -> str:
        return self.s(self.rng.randrange(20, 33), ALNUM)

    # ------------------------------------------------------------------ negatives: references
    def t29_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["MOODLE_WS_TOKEN"]',
                'os.getenv("MOODLE_WS_TOKEN")',
                'keyring.get_password("moodle-ws", "svc_gradesync")',
                'getpass.getpass("Moodle WS token: ")',
            ]
        )

    def t29_py_ref_openai(self) -> str:
        return self.pick(
            [
                'os.environ["OPENAI_API_KEY"]',
                'os.getenv("OPENAI_API_KEY")',
                'os.environ.get("OPENAI_API_KEY", "")',
            ]
        )

    def t29_php_ref(self) -> str:
        return self.pick(
            [
                "getenv('MOODLE_DB_PASSWORD')",
                "$_ENV['MOODLE_DBPASS']",
                "trim(file_get_contents('/run/secrets/moodle_dbpass'))",
                "get_config('local_hsusync', 'apitoken')",
            ]
        )

    def t29_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.CANVAS_TOKEN",
                "process.env['CANVAS_TOKEN'] ?? ''",
                "await getToken()",
                "config.canvasToken",
            ]
        )

    def t29_sh_ref(self) -> str:
        return self.pick(
            [
                '"$(cat /run/secrets/db_password)"',
                '"${DB_PASSWORD:?DB_PASSWORD not set}"',
                '"$(vault kv get -field=password secret/batch/db)"',
                '"$DB_PASSWORD"',
            ]
        )

    def t29_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.SFDX_AUTH_URL }}",
                "${{ secrets.PROD_AUTH_URL }}",
                "${{ secrets.ADVANCE_PROD_SFDX_URL }}",
            ]
        )

    def t29_ci_ref_test(self) -> str:
        return self.pick(
            [
                "${{ secrets.SESSION_SECRET }}",
                "${{ env.TEST_SESSION_SECRET }}",
                "${{ secrets.TEST_SESSION_SECRET }}",
            ]
        )

    def t29_gitlab_ref(self) -> str:
        return self.pick(["$CI_JOB_TOKEN", "${CI_JOB_TOKEN}"])

    def t29_yaml_ref(self) -> str:
        return self.pick(
            [
                "{{ slurm_db_password }}",
                "{{ vault_slurm_db_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/hpc/slurmdbd:pass') }}",
            ]
        )

    def t29_compose_ref(self) -> str:
        return self.pick(
            [
                "${AIRFLOW_SECRET_KEY}",
                "${AIRFLOW_CONN_LIMS_DB}",
                "${POSTGRES_PASSWORD:?set it in .env}",
                "${AIRFLOW_DB_PASSWORD}",
            ]
        )

    def t29_java_ref(self) -> str:
        return self.pick(
            [
                "${ETHOS_API_KEY}",
                "${SIS_DB_PASSWORD:}",
                "${vault.sis.password}",
                "${ETHOS_API_KEY:}",
            ]
        )

    def t29_dotnet_ref(self) -> str:
        return self.pick(
            [
                "#{SisDbPassword}#",
                "__SIS_DB_PASSWORD__",
                "@Microsoft.KeyVault(SecretUri=https://kv-sis-prod.vault.azure.net/secrets/sis-db/)",
                "",
            ]
        )

    def t29_ps_ref(self) -> str:
        return self.pick(
            [
                "(Read-Host -AsSecureString 'New password')",
                "(Get-Credential $Sam).Password",
                "(New-HsuRandomPassword -Length 16 | ConvertTo-SecureString -AsPlainText -Force)",
            ]
        )

    def t29_r_ref(self) -> str:
        return self.pick(
            [
                'Sys.getenv("REDCAP_TOKEN")',
                'keyring::key_get("redcap", "psych-study")',
                'rstudioapi::askForSecret("REDCap token")',
            ]
        )

    def t29_r_ref_spotify(self) -> str:
        return self.pick(
            [
                'keyring::key_get("spotify")',
                'readLines("~/.spotify_secret")',
                'rstudioapi::askForSecret("Spotify client secret")',
            ]
        )

    def t29_tf_ref(self) -> str:
        return self.pick(
            [
                "var.db_password",
                "random_password.moodle_db.result",
                "data.aws_secretsmanager_secret_version.canvas.secret_string",
                'data.vault_generic_secret.globus.data["client_secret"]',
            ]
        )

    def t29_k8s_ref(self) -> str:
        return self.pick(
            ["moodle-online-db", "moodle-secrets", "moodle-online-redis", "moodle-online"]
        )

    def t29_ps_ref_az(self) -> str:
        return self.pick(
            [
                "(Get-AzAccessToken -ResourceUrl 'https://storage.azure.com/').Token",
                "(Get-Secret -Name ConfocalSas -AsPlainText)",
                "$env:IDENTITY_HEADER",
            ]
        )

    def t29_placeholder(self) -> str:
        return self.pick(
            [
                "<your-canvas-token>",
                "CHANGE_ME",
                "YOUR_TOKEN_HERE",
                "xxxxxxxx",
                "<password>",
                "replace-with-real-secret",
                "TBD",
                "********",
                "<ask #rc-help for this>",
                "...",
            ]
        )

    def t29_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "****",
                "<redacted>",
                "[filtered]",
                "***REMOVED***",
                "(removed - rotated 2024-03-12)",
                "REDACTED",
            ]
        )

    # ------------------------------------------------------------------ negatives: hashes, ciphertexts
    def t29_bcrypt(self) -> str:
        return self.pick(["$2y$10$", "$2b$12$", "$2a$10$"]) + self.s(53, CRYPT64)

    def t29_ssha(self) -> str:
        return "{SSHA}" + base64.b64encode(self.rng.randbytes(24)).decode()

    def t29_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def t29_cisco_hash(self) -> str:
        if self.rng.randrange(2):
            return f"5 $1${self.s(4, CRYPT64)}${self.s(22, CRYPT64)}"
        return f"9 $9${self.s(14, CRYPT64)}${self.s(43, CRYPT64)}"

    def t29_django_hash(self) -> str:
        return (
            f"pbkdf2_sha256$720000${self.s(22, ALNUM)}$"
            + base64.b64encode(self.rng.randbytes(32)).decode()
        )

    def t29_argon2(self) -> str:
        salt = self.t29_util_b64(16, pad=False)
        return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self.t29_util_b64(32, pad=False)}"

    def t29_ansible_vault(self) -> str:
        body = self.rng.randbytes(self.rng.randrange(150, 260)).hex()
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "!vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  " + "\n  ".join(rows)

    def t29_sops(self) -> str:
        return (
            f"ENC[AES256_GCM,data:{self.t29_util_b64(self.rng.randrange(12, 30))},"
            f"iv:{self.t29_util_b64(32)},tag:{self.t29_util_b64(16)},type:str]"
        )

    def t29_sealed(self) -> str:
        return "AgB" + self.t29_util_b64(self.rng.randrange(300, 420)).rstrip("=")

    def t29_cert(self) -> str:
        der = bytes.fromhex("308205a43082038ca003020102021400") + self.rng.randbytes(1420)
        return self.t29_util_armor("CERTIFICATE", der)

    def t29_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
        ).decode()
        return f"ssh-ed25519 {body} {self.pick(['jdoe', 'rc-admin', 'mchen', 'ta-bot'])}@hsu.edu"

    def t29_jwks_n(self) -> str:
        return self.t29_util_b64(256, urlsafe=True, pad=False)

    def t29_recaptcha_site(self) -> str:
        return "6L" + self.s(1, "cdef") + self.s(37, URLSAFE)

    def t29_mapbox_pk(self) -> str:
        body = (
            base64.urlsafe_b64encode(('{"u":"hsumaps","a":"' + self.s(25, LOWNUM) + '"}').encode())
            .decode()
            .rstrip("=")
        )
        return f"pk.{body}.{self.s(22, URLSAFE)}"

    def t29_stripe_pk(self) -> str:
        return "pk_live_51" + self.s(96, ALNUM)

    def t29_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    # ------------------------------------------------------------------ negatives: identifiers
    def t29_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t29_orcid(self) -> str:
        base = "0000000" + self.pick(["1", "2", "3"]) + self.s(7, DIGITS)
        total = 0
        for ch in base:
            total = (total + int(ch)) * 2
        check = (12 - total % 11) % 11
        digits = base + ("X" if check == 10 else str(check))
        return "-".join(digits[i : i + 4] for i in range(0, 16, 4))

    def t29_student_id(self) -> str:
        return self.pick(["H", "900", "U"]) + self.s(8, DIGITS)

    def t29_canvas_dev_key_id(self) -> str:
        return "1" + "0" * 9 + self.s(4, DIGITS)

    def t29_git_sha(self) -> str:
        return self.s(40, HEX)

    def t29_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(64)).hexdigest()

    def t29_sri(self) -> str:
        return "sha384-" + self.t29_util_b64(48)

    def t29_doi(self) -> str:
        return f"10.{self.rng.randrange(1000, 9999)}/hsu.{self.s(4, DIGITS)}.{self.s(6, LOWNUM)}"

    def t29_badge(self) -> str:
        return (
            self.pick(["26", "35", "37"])
            + "-bit facility "
            + self.s(3, DIGITS)
            + " card "
            + self.s(5, DIGITS)
        )

    def t29_mac(self) -> str:
        return ":".join(self.s(2, HEX) for _ in range(6))

    def t29_csrf(self) -> str:
        return self.s(self.pick([10, 32]), ALNUM)

    def t29_example_cred(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            ]
        )

    def t29_doc_host_uri(self) -> str:
        return self.pick(
            [
                "postgresql://user:password@localhost:5432/mydb",
                "mysql://moodleuser:yourpassword@db.example.com/moodle",
                "ldaps://cn=admin,dc=example,dc=org:secret@ldap.example.org",
                "https://alice:s3cr3t@example.com/private",
                "mongodb://root:example@mongo:27017/",
                "amqp://guest:guest@localhost:5672/",
            ]
        )

    def t29_fake(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "not-a-real-password",
                "test_secret_do_not_use",
                "dummy-canvas-token",
                "FAKE" + self.s(28, UPNUM),
                "testpass",
                "unit-test-only-key",
                "0" * 32,
            ]
        )

    def t29_ui_text(self) -> str:
        return self.pick(
            [
                "Your password must be at least 12 characters and include a number.",
                "Forgot your NetID password?",
                "Passwords do not match",
                "Enter the access token from your Canvas profile",
                "Contraseña incorrecta. Inténtelo de nuevo.",
                "Mot de passe oublié ?",
                "密码错误，请重试",
                "Passwort muss mindestens 12 Zeichen haben",
                "Token expired - sign in again",
                "비밀번호를 입력하세요",
            ]
        )

    def t29_lfs_oid(self) -> str:
        return hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def t29_png_b64(self) -> str:
        return base64.b64encode(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
            + self.rng.randbytes(self.rng.randrange(120, 260))
        ).decode()

    def t29_doc_placeholder_canvas(self) -> str:
        return self.pick(
            [
                "<paste-token-here>",
                "7~" + "X" * 64,
                "1~abc123...",
                "$YOUR_CANVAS_TOKEN",
                "<token>",
                "1~" + "x" * 64,
            ]
        )

    def t29_mule_secure(self) -> str:
        return self.t29_util_b64(self.rng.randrange(16, 40))

    def t29_sssd_obf(self) -> str:
        return "AAAQAB" + self.t29_util_b64(self.rng.randrange(60, 90))

    def t29_oidc_ref(self) -> str:
        return self.pick(
            [
                "%{lookup('profile::ood::oidc_client_secret')}",
                "{{ vault_ood_oidc_client_secret }}",
                "REPLACE_WITH_KEYCLOAK_SECRET",
                "${OOD_OIDC_CLIENT_SECRET}",
            ]
        )

    def t29_doc_placeholder_hf(self) -> str:
        return self.pick(
            ["hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "<your-hf-token>", "$HF_TOKEN", "hf_..."]
        )

    def t29_julia_ref(self) -> str:
        return self.pick(
            [
                'ENV["NEURO_DB_PASS"]',
                'get(ENV, "NEURO_DB_PASS", "")',
                'read(expanduser("~/.neurodb"), String)',
            ]
        )

    def t29_kts_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("HSU_RELEASE_STORE_PASSWORD")',
                'providers.gradleProperty("HSU_RELEASE_KEY_PASSWORD").get()',
                'keystoreProperties["storePassword"] as String',
            ]
        )

    def t29_mysql_hash(self) -> str:
        return "*" + self.s(40, HEXU)

    def t29_scram(self) -> str:
        return (
            f"SCRAM-SHA-256$4096:{self.t29_util_b64(16)}$"
            f"{self.t29_util_b64(32)}:{self.t29_util_b64(32)}"
        )

    def t29_doc_placeholder_openai(self) -> str:
        return self.pick(
            [
                "sk-proj-...",
                "<your-team-key>",
                "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "sk-proj-XXXX",
            ]
        )

    def t29_go_ref(self) -> str:
        return self.pick(['os.Getenv("JWT_SECRET")', 'mustEnv("JWT_SECRET")', "cfg.JWTSecret"])

    def t29_hs_ref(self) -> str:
        return self.pick(['getEnv "PGPASSWORD"', 'maybe "" id <$> lookupEnv "PGPASSWORD"'])

    def t29_tf_var_default(self) -> str:
        return self.pick(["null", '""', '"CHANGEME"', '"<set-me>"'])

    def t29_docker_ref(self) -> str:
        return self.pick(['""', "", "${SENTRY_AUTH_TOKEN}", "changeme-at-build"])

    def t29_tfstate_neg(self) -> str:
        return self.pick(["null", '""'])

    def t29_shib_ref(self) -> str:
        return self.pick(
            [
                "%{env.IDP_SEALER_PASSWORD}",
                "%{env.IDP_LDAP_BIND_PASSWORD}",
                "${file:/run/secrets/idp_sealer_pw}",
            ]
        )

    def t29_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def t29_scala_ref(self) -> str:
        return self.pick(
            ['sys.env("SIS_RO_PASSWORD")', 'spark.conf.get("spark.hsu.sis.password")', "args(0)"]
        )


VALUES = Tune29Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = [
    # ================================================================ Moodle farm
    _t(
        "lms/moodle-farm/sites/learn/config.php",
        "t29_pw",
        True,
        """
        <?php  // Moodle configuration file - learn.hsu.edu (prod)

        unset($CFG);
        global $CFG;
        $CFG = new stdClass();

        $CFG->dbtype    = 'pgsql';
        $CFG->dblibrary = 'native';
        $CFG->dbhost    = 'pg-moodle-01.db.hsu.edu';
        $CFG->dbname    = 'moodle_learn';
        $CFG->dbuser    = 'moodle';
        $CFG->dbpass    = '{V}';
        $CFG->prefix    = 'mdl_';
        $CFG->dboptions = array(
            'dbpersist' => 0,
            'dbport' => 5432,
            'dbsocket' => '',
        );

        $CFG->wwwroot   = 'https://learn.hsu.edu';
        $CFG->dataroot  = '/srv/moodledata/learn';
        $CFG->admin     = 'admin';
        $CFG->session_handler_class = '\\core\\session\\redis';
        $CFG->session_redis_host = 'redis-moodle.hsu.edu';
        $CFG->session_redis_auth = '{V2}';

        $CFG->directorypermissions = 0777;

        require_once(__DIR__ . '/lib/setup.php');
        """,
    ),
    _t(
        "lms/moodle-farm/sites/online/config.php",
        "t29_php_ref",
        False,
        """
        <?php  // Moodle configuration file - online.hsu.edu (HSU Online)

        unset($CFG);
        global $CFG;
        $CFG = new stdClass();

        $CFG->dbtype    = 'pgsql';
        $CFG->dblibrary = 'native';
        $CFG->dbhost    = getenv('MOODLE_DBHOST') ?: 'pg-moodle-02.db.hsu.edu';
        $CFG->dbname    = 'moodle_online';
        $CFG->dbuser    = 'moodle_online';
        $CFG->dbpass    = {V};
        $CFG->prefix    = 'mdl_';

        $CFG->wwwroot   = 'https://online.hsu.edu';
        $CFG->dataroot  = '/srv/moodledata/online';
        $CFG->passwordsaltmain = {V2};

        require_once(__DIR__ . '/lib/setup.php');
        """,
    ),
    _t(
        "lms/moodle-farm/docker/.env",
        "t29_weak_pw",
        True,
        """
        # moodle-docker overrides for the staging box (stage-lms-03)
        MOODLE_DOCKER_WWWROOT=/home/lmsadmin/src/moodle
        MOODLE_DOCKER_DB=pgsql
        MOODLE_DOCKER_PHP_VERSION=8.1
        MOODLE_DOCKER_WEB_PORT=0.0.0.0:8080
        POSTGRES_USER=moodle
        POSTGRES_PASSWORD={V}
        MOODLE_ADMIN_USER=admin
        MOODLE_ADMIN_PASSWORD={V2}
        """,
    ),
    _t(
        "lms/moodle-farm/docker/.env.example",
        "t29_placeholder",
        False,
        """
        # copy to .env and fill in - do NOT commit .env
        MOODLE_DOCKER_WWWROOT=/path/to/moodle
        MOODLE_DOCKER_DB=pgsql
        MOODLE_DOCKER_PHP_VERSION=8.1
        POSTGRES_USER=moodle
        POSTGRES_PASSWORD={V}
        MOODLE_ADMIN_USER=admin
        MOODLE_ADMIN_PASSWORD={V2}
        """,
    ),
    _t(
        "lms/local_hsusync/classes/task/push_enrolments.php",
        "t29_moodle_token",
        True,
        """
        <?php
        namespace local_hsusync\\task;

        defined('MOODLE_INTERNAL') || die();

        /**
         * Pushes enrolments from learn.hsu.edu to the HSU Online site through its web services.
         * TODO(mkowal): move the token to plugin settings before the 4.3 upgrade.
         */
        class push_enrolments extends \\core\\task\\scheduled_task {
            const REMOTE = 'https://online.hsu.edu/webservice/rest/server.php';
            const WSTOKEN = '{V}';

            public function get_name() {
                return get_string('pushenrolments', 'local_hsusync');
            }

            public function execute() {
                $curl = new \\curl();
                $params = [
                    'wstoken' => self::WSTOKEN,
                    'wsfunction' => 'enrol_manual_enrol_users',
                    'moodlewsrestformat' => 'json',
                ];
                foreach ($this->pending() as $i => $row) {
                    $params["enrolments[$i][roleid]"] = 5;
                    $params["enrolments[$i][userid]"] = $row->remoteuserid;
                    $params["enrolments[$i][courseid]"] = $row->remotecourseid;
                }
                $curl->post(self::REMOTE, $params);
            }
        }
        """,
    ),
    _t(
        "lms/local_hsusync/settings.php",
        "t29_ui_text",
        False,
        """
        <?php
        defined('MOODLE_INTERNAL') || die();

        if ($hassiteconfig) {
            $settings = new admin_settingpage('local_hsusync', get_string('pluginname', 'local_hsusync'));
            $settings->add(new admin_setting_configpasswordunmask(
                'local_hsusync/apitoken',
                get_string('apitoken', 'local_hsusync'),
                '{V}',
                ''
            ));
            $ADMIN->add('localplugins', $settings);
        }
        """,
    ),
    _t(
        "lms/local_hsusync/tests/push_enrolments_test.php",
        "t29_fake",
        False,
        """
        <?php
        namespace local_hsusync;

        /**
         * @covers \\local_hsusync\\task\\push_enrolments
         */
        final class push_enrolments_test extends \\advanced_testcase {
            public function test_token_is_sent(): void {
                $this->resetAfterTest();
                set_config('apitoken', '{V}', 'local_hsusync');
                $task = new task\\push_enrolments();
                $this->assertEquals('{V}', get_config('local_hsusync', 'apitoken'));
            }
        }
        """,
    ),
    _t(
        "lms/scripts/ws_get_grades.py",
        "t29_moodle_token",
        True,
        """
        #!/usr/bin/env python3
        \"\"\"Pull final grades for a term from Moodle web services (core_grades_get_gradeitems).\"\"\"
        import csv
        import sys

        import requests

        MOODLE = "https://learn.hsu.edu/webservice/rest/server.php"
        TOKEN = "{V}"  # ws user: svc_gradesync (role: Grade export)


        def call(fn, **params):
            params.update(wstoken=TOKEN, wsfunction=fn, moodlewsrestformat="json")
            r = requests.post(MOODLE, data=params, timeout=60)
            r.raise_for_status()
            return r.json()


        if __name__ == "__main__":
            courseid = int(sys.argv[1])
            items = call("gradereport_user_get_grade_items", courseid=courseid)
            w = csv.writer(sys.stdout)
            for user in items["usergrades"]:
                w.writerow([user["userid"], user["gradeitems"][-1]["gradeformatted"]])
        """,
    ),
    _t(
        "lms/scripts/ws_get_grades_env.py",
        "t29_py_ref",
        False,
        """
        #!/usr/bin/env python3
        \"\"\"Same as ws_get_grades.py but reads the token from the environment (cron on lms-util-01).\"\"\"
        import os
        import requests

        MOODLE = os.environ.get("MOODLE_WS_URL", "https://learn.hsu.edu/webservice/rest/server.php")
        TOKEN = {V}


        def call(fn, **params):
            params.update(wstoken=TOKEN, wsfunction=fn, moodlewsrestformat="json")
            return requests.post(MOODLE, data=params, timeout=60).json()
        """,
    ),
    _t(
        "lms/db/seed_demo_users.sql",
        "t29_bcrypt",
        False,
        """
        -- Demo accounts for the training site (train.learn.hsu.edu). Passwords are reset nightly.
        INSERT INTO mdl_user (auth, confirmed, mnethostid, username, password, firstname, lastname, email)
        VALUES
          ('manual', 1, 1, 'demo.student', '{V}', 'Demo', 'Student', 'demo.student@hsu.edu'),
          ('manual', 1, 1, 'demo.teacher', '{V2}', 'Demo', 'Teacher', 'demo.teacher@hsu.edu'),
          ('manual', 1, 1, 'demo.manager', '{V3}', 'Demo', 'Manager', 'demo.manager@hsu.edu');
        """,
    ),
    _t(
        "lms/moodle-farm/cron/backup-moodledata.sh",
        "t29_url_pw",
        True,
        """
        #!/usr/bin/env bash
        # nightly: dump moodle DB + rsync moodledata to the backup NAS
        set -euo pipefail
        STAMP=$(date +%F)
        pg_dump "postgresql://moodle_backup:{V}@pg-moodle-01.db.hsu.edu:5432/moodle_learn" \\
          | zstd -T4 > /backup/moodle/learn-$STAMP.sql.zst
        export RSYNC_PASSWORD='{V2}'
        rsync -a --delete /srv/moodledata/learn/ rsync://moodlebk@nas-bk-02.hsu.edu/moodledata/learn/
        find /backup/moodle -name '*.sql.zst' -mtime +14 -delete
        """,
    ),
    _t(
        "lms/moodle-farm/k8s/moodle-online-deployment.yaml",
        "t29_k8s_ref",
        False,
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: moodle-online
          namespace: lms
        spec:
          replicas: 4
          selector:
            matchLabels: {app: moodle-online}
          template:
            metadata:
              labels: {app: moodle-online}
            spec:
              containers:
                - name: php-fpm
                  image: registry.hsu.edu/lms/moodle:4.3.4-hsu2
                  env:
                    - name: MOODLE_DBPASS
                      valueFrom:
                        secretKeyRef:
                          name: {V}
                          key: password
                    - name: MOODLE_REDIS_AUTH
                      valueFrom:
                        secretKeyRef:
                          name: {V2}
                          key: redis-auth
        """,
    ),
    # ================================================================ Canvas (HSU Online)
    _t(
        "lms/canvas-lms/config/database.yml",
        "t29_pw",
        True,
        """
        production:
          adapter: postgresql
          encoding: utf8
          database: canvas_production
          host: canvas-db.online.hsu.edu
          username: canvas
          password: {V}
          timeout: 5000
          secondary:
            replica: true
            host: canvas-db-ro.online.hsu.edu
            username: canvas_ro
            password: {V2}
        """,
    ),
    _t(
        "lms/canvas-lms/config/security.yml",
        "t29_flask_key",
        True,
        """
        production: &default
          # generated 2023-07-02 for canvas.online.hsu.edu - changing this invalidates all sessions
          encryption_key: {V}
          lti_iss: 'https://canvas.online.hsu.edu'

        development:
          <<: *default
          encryption_key: {V2}
        """,
    ),
    _t(
        "lms/canvas-lms/config/security.yml.example",
        "t29_placeholder",
        False,
        """
        production: &default
          # replace with a random string of at least 20 characters
          encryption_key: {V}
          lti_iss: 'https://canvas.instructure.com'

        development:
          <<: *default
          encryption_key: {V2}
        """,
    ),
    _t(
        "ta-tools/canvas_bulk_grades/upload_grades.py",
        "t29_canvas_token",
        True,
        """
        # CS 2110 TA script - uploads autograder scores to Canvas.
        # usage: python upload_grades.py scores.csv ASSIGNMENT_ID
        import csv
        import sys

        from canvasapi import Canvas

        API_URL = "https://canvas.online.hsu.edu"
        API_KEY = "{V}"  # Priya's token (TA), expires end of semester
        COURSE_ID = 48213

        canvas = Canvas(API_URL, API_KEY)
        course = canvas.get_course(COURSE_ID)
        assignment = course.get_assignment(int(sys.argv[2]))

        with open(sys.argv[1]) as fh:
            for row in csv.DictReader(fh):
                sub = assignment.get_submission(int(row["canvas_id"]))
                sub.edit(submission={"posted_grade": row["score"]})
                print("graded", row["canvas_id"], row["score"])
        """,
    ),
    _t(
        "ta-tools/canvas_bulk_grades/README.md",
        "t29_doc_placeholder_canvas",
        False,
        """
        # canvas_bulk_grades

        Uploads autograder scores into a Canvas assignment.

        1. In Canvas go to **Account > Settings > + New Access Token** and copy the token.
        2. `export CANVAS_TOKEN={V}`
        3. `python upload_grades.py scores.csv 123456`

        The token looks like `{V2}` - never paste it into the script or into Slack.
        """,
    ),
    _t(
        "ta-tools/late-days/src/canvas.ts",
        "t29_js_ref",
        False,
        """
        import axios from "axios";

        const BASE = "https://canvas.online.hsu.edu/api/v1";

        export const canvas = axios.create({
          baseURL: BASE,
          headers: { Authorization: `Bearer ${{V}}` },
        });

        export async function lateSubmissions(courseId: number, assignmentId: number) {
          const { data } = await canvas.get(
            `/courses/${courseId}/assignments/${assignmentId}/submissions`,
            { params: { per_page: 100, "include[]": "user" } },
          );
          return data.filter((s: { late: boolean }) => s.late);
        }
        """,
    ),
    _t(
        "lti/peer-review-tool/config/platforms.json",
        "t29_canvas_dev_key_id",
        False,
        """
        [
          {
            "name": "HSU Online Canvas",
            "issuer": "https://canvas.instructure.com",
            "client_id": "{V}",
            "deployment_id": "412:8f2c0a7d5b1e4e9f0d6a3c2b1a09f8e7d6c5b4a3",
            "auth_login_url": "https://sso.canvaslms.com/api/lti/authorize_redirect",
            "auth_token_url": "https://sso.canvaslms.com/login/oauth2/token",
            "key_set_url": "https://sso.canvaslms.com/api/lti/security/jwks"
          },
          {
            "name": "HSU Online Canvas (beta)",
            "issuer": "https://canvas.beta.instructure.com",
            "client_id": "{V2}",
            "deployment_id": "412:8f2c0a7d5b1e4e9f0d6a3c2b1a09f8e7d6c5b4a3"
          }
        ]
        """,
    ),
    _t(
        "lti/peer-review-tool/keys/private.key",
        "t29_rsa_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "lti/peer-review-tool/keys/public.jwk.json",
        "t29_jwks_n",
        False,
        """
        {
          "keys": [
            {
              "kty": "RSA",
              "alg": "RS256",
              "use": "sig",
              "kid": "hsu-peer-review-2024",
              "e": "AQAB",
              "n": "{V}"
            }
          ]
        }
        """,
    ),
    _t(
        "lti/attendance-lti/app/settings.py",
        "t29_django_key",
        True,
        """
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent

        SECRET_KEY = "{V}"

        DEBUG = False
        ALLOWED_HOSTS = ["attendance.online.hsu.edu"]

        INSTALLED_APPS = [
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "lti_tool",
            "attendance",
        ]

        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "attendance",
                "USER": "attendance",
                "HOST": "pg-apps.online.hsu.edu",
            }
        }
        """,
    ),
    _t(
        "lti/attendance-lti/attendance/fixtures/staff.json",
        "t29_django_hash",
        False,
        """
        [
          {
            "model": "auth.user",
            "pk": 1,
            "fields": {
              "username": "lti-admin",
              "password": "{V}",
              "is_superuser": true,
              "is_staff": true,
              "email": "lti-admin@online.hsu.edu"
            }
          },
          {
            "model": "auth.user",
            "pk": 2,
            "fields": {
              "username": "instructor-demo",
              "password": "{V2}",
              "is_staff": false
            }
          }
        ]
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Student-information system
    _t(
        "sis/batch/tnsnames.ora.README.md",
        "t29_pw",
        True,
        """
        # SIS batch host (sis-batch-02) - Oracle client setup

        `tnsnames.ora` is in `/u01/app/oracle/network/admin`. The batch jobs connect as:

        | schema     | purpose                     | password              |
        |------------|-----------------------------|-----------------------|
        | SIS_BATCH  | nightly feeds (LMS, ID card)| `{V}` |
        | SIS_RO     | reporting / Argos           | `{V2}` |

        Test with `sqlplus SIS_BATCH@SISPROD` and paste the password when asked.
        """,
    ),
    _t(
        "sis/batch/jobs/lms_feed.sh",
        "t29_sh_ref",
        False,
        """
        #!/bin/bash
        # Builds the term enrolment feed for Moodle and Canvas (runs 02:10 from cron)
        set -euo pipefail
        TERM=${1:-$(date +%Y)30}
        SIS_PW={V}
        sqlplus -s "SIS_BATCH/${SIS_PW}@SISPROD" @/opt/sis/sql/lms_feed.sql "$TERM" > /tmp/lms_feed_$TERM.csv
        scp /tmp/lms_feed_$TERM.csv lmsfeed@lms-util-01.hsu.edu:/srv/feeds/incoming/
        """,
    ),
    _t(
        "sis/integrations/ethos-sync/src/main/resources/application.properties",
        "t29_ethos_key",
        True,
        """
        spring.application.name=ethos-sync
        ethos.baseUrl=https://integrate.elluciancloud.com
        # API key of the "HSU LMS Sync" application in Ethos Integration (prod tenant)
        ethos.apiKey={V}
        ethos.pageSize=500
        sis.datasource.url=jdbc:oracle:thin:@//sisdb-scan.hsu.edu:1521/SISPROD
        sis.datasource.username=SIS_BATCH
        """,
    ),
    _t(
        "sis/integrations/ethos-sync/src/main/resources/application-local.properties",
        "t29_java_ref",
        False,
        """
        ethos.baseUrl=https://integrate.elluciancloud.com
        ethos.apiKey={V}
        sis.datasource.url=jdbc:oracle:thin:@//localhost:1521/XEPDB1
        sis.datasource.username=SIS_BATCH
        sis.datasource.password={V2}
        """,
    ),
    _t(
        "sis/integrations/ethos-sync/src/main/java/edu/hsu/ethos/PersonMapper.java",
        "t29_uuid",
        False,
        """
        package edu.hsu.ethos;

        import java.util.Map;

        /** Maps Ethos persons to LMS user records. The GUIDs are Ethos resource ids, not secrets. */
        public final class PersonMapper {
            static final Map<String, String> EMAIL_TYPES = Map.of(
                "institution", "{V}",
                "personal", "{V2}"
            );
            static final String STUDENT_ROLE_ID = "{V3}";

            private PersonMapper() {}
        }
        """,
    ),
    _t(
        "sis/integrations/IdCardExport/appsettings.Production.json",
        "t29_pw",
        True,
        """
        {
          "Logging": { "LogLevel": { "Default": "Information" } },
          "ConnectionStrings": {
            "Sis": "Data Source=sisdb-scan.hsu.edu:1521/SISPROD;User Id=sis_idcard;Password={V};",
            "CardSystem": "Server=cbord-sql.hsu.edu;Database=CS_Gold;User Id=idcard_export;Password={V2};Encrypt=True"
          },
          "Export": { "Schedule": "0 */2 * * *" }
        }
        """,
    ),
    _t(
        "sis/integrations/IdCardExport/appsettings.json",
        "t29_dotnet_ref",
        False,
        """
        {
          "ConnectionStrings": {
            "Sis": "Data Source=sisdb-scan.hsu.edu:1521/SISPROD;User Id=sis_idcard;Password={V};",
            "CardSystem": "Server=cbord-sql.hsu.edu;Database=CS_Gold;User Id=idcard_export;Password={V2};Encrypt=True"
          }
        }
        """,
    ),
    _t(
        "sis/mule/hsu-sis-api/src/main/resources/config/prod.yaml",
        "t29_mule_secure",
        False,
        """
        http:
          port: "8081"
        sis:
          db:
            host: "sisdb-scan.hsu.edu"
            port: "1521"
            service: "SISPROD"
            user: "SIS_API"
            password: "![{V}]"
        salesforce:
          username: "integration@hsu.edu.advance"
          password: "![{V2}]"
        """,
    ),
    _t(
        "sis/reports/argos/datablocks/README.txt",
        "t29_student_id",
        False,
        """
        Argos datablock notes (Registrar)
        ---------------------------------
        Test students used when validating the "Holds by Term" block:
          {V}  (undergrad, financial hold)
          {V2} (grad, advising hold)
          {V3} (no holds)
        Do not use real students when screen-sharing with the vendor.
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Research computing: Slurm, LDAP
    _t(
        "rc/ansible/roles/slurm/files/slurmdbd.conf",
        "t29_pw",
        True,
        """
        # slurmdbd.conf - hopper cluster accounting (managed by ansible, role slurm)
        AuthType=auth/munge
        DbdHost=hopper-dbd01
        DbdPort=6819
        SlurmUser=slurm
        LogFile=/var/log/slurm/slurmdbd.log
        PidFile=/run/slurmdbd/slurmdbd.pid
        StorageType=accounting_storage/mysql
        StorageHost=hopper-mariadb.rc.hsu.edu
        StoragePort=3306
        StorageUser=slurm
        StoragePass={V}
        StorageLoc=slurm_acct_db
        PurgeJobAfter=24month
        """,
    ),
    _t(
        "rc/ansible/roles/slurm/templates/slurmdbd.conf.j2",
        "t29_yaml_ref",
        False,
        """
        # {{ ansible_managed }}
        AuthType=auth/munge
        DbdHost={{ slurmdbd_host }}
        SlurmUser=slurm
        StorageType=accounting_storage/mysql
        StorageHost={{ slurm_db_host }}
        StorageUser={{ slurm_db_user }}
        StoragePass={V}
        StorageLoc=slurm_acct_db
        """,
    ),
    _t(
        "rc/ansible/group_vars/hopper/vault.yml",
        "t29_ansible_vault",
        False,
        """
        ---
        slurm_db_password: {IV}
        ldap_bind_pw: {IV2}
        """,
    ),
    _t(
        "rc/ansible/roles/sssd/files/sssd.conf",
        "t29_ldap_pw",
        True,
        """
        [sssd]
        services = nss, pam, ssh
        domains = rc.hsu.edu

        [domain/rc.hsu.edu]
        id_provider = ldap
        auth_provider = ldap
        ldap_uri = ldaps://ldap.rc.hsu.edu
        ldap_search_base = dc=rc,dc=hsu,dc=edu
        ldap_default_bind_dn = cn=hopper-nss,ou=svc,dc=rc,dc=hsu,dc=edu
        ldap_default_authtok_type = password
        ldap_default_authtok = {V}
        ldap_tls_reqcert = demand
        cache_credentials = true
        """,
    ),
    _t(
        "rc/ansible/roles/sssd/files/sssd.conf.obfuscated",
        "t29_sssd_obf",
        False,
        """
        [domain/rc.hsu.edu]
        id_provider = ldap
        ldap_uri = ldaps://ldap.rc.hsu.edu
        ldap_default_bind_dn = cn=hopper-nss,ou=svc,dc=rc,dc=hsu,dc=edu
        # written by sss_obfuscate; sssd decodes it itself, the value is useless elsewhere
        ldap_default_authtok_type = obfuscated_password
        ldap_default_authtok = {V}
        """,
    ),
    _t(
        "rc/ldap/slapd.d/olcDatabase={2}mdb.ldif",
        "t29_ssha",
        False,
        """
        # AUTO-GENERATED FILE - DO NOT EDIT!! Use ldapmodify.
        dn: olcDatabase={2}mdb
        objectClass: olcDatabaseConfig
        objectClass: olcMdbConfig
        olcDatabase: {2}mdb
        olcDbDirectory: /var/lib/ldap
        olcSuffix: dc=rc,dc=hsu,dc=edu
        olcRootDN: cn=Manager,dc=rc,dc=hsu,dc=edu
        olcRootPW: {V}
        olcDbIndex: objectClass eq,pres
        olcDbIndex: uid,memberUid eq,pres,sub
        """,
    ),
    _t(
        "rc/slurm/slurm.conf",
        "t29_sha256",
        False,
        """
        # hopper slurm.conf (excerpt)
        ClusterName=hopper
        SlurmctldHost=hopper-ctl01
        AuthType=auth/munge
        AuthAltTypes=auth/jwt
        AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key
        CredType=cred/munge
        # sha256 of the deployed jwt key, checked by the ansible role (not the key)
        # jwt_key_sha256={V}
        # munge_key_sha256={V2}
        SelectType=select/cons_tres
        PartitionName=gpu Nodes=hgx[01-12] MaxTime=2-00:00:00 State=UP
        """,
    ),
    _t(
        "rc/tools/slurm-usage-report/report.go",
        "t29_jwt",
        True,
        """
        package main

        import (
        	"encoding/json"
        	"fmt"
        	"net/http"
        	"os"
        )

        // token from `scontrol token username=slurmrest lifespan=infinite` (RC-1177)
        const slurmToken = "{V}"

        func main() {
        	req, _ := http.NewRequest("GET", "http://hopper-ctl01:6820/slurmdb/v0.0.40/jobs", nil)
        	req.Header.Set("X-SLURM-USER-NAME", "slurmrest")
        	req.Header.Set("X-SLURM-USER-TOKEN", slurmToken)
        	resp, err := http.DefaultClient.Do(req)
        	if err != nil {
        		fmt.Fprintln(os.Stderr, err)
        		os.Exit(1)
        	}
        	defer resp.Body.Close()
        	var out map[string]any
        	_ = json.NewDecoder(resp.Body).Decode(&out)
        	fmt.Println(len(out["jobs"].([]any)), "jobs")
        }
        """,
    ),
    _t(
        "rc/ood/ood_portal.yml",
        "t29_oidc_ref",
        False,
        """
        ---
        servername: ondemand.rc.hsu.edu
        ssl:
          - 'SSLCertificateFile "/etc/pki/tls/certs/ondemand.rc.hsu.edu.crt"'
          - 'SSLCertificateKeyFile "/etc/pki/tls/private/ondemand.rc.hsu.edu.key"'
        auth:
          - 'AuthType openid-connect'
          - 'Require valid-user'
        oidc_uri: /oidc
        oidc_provider_metadata_url: https://login.hsu.edu/.well-known/openid-configuration
        oidc_client_id: ondemand-rc
        oidc_client_secret: "{V}"
        oidc_remote_user_claim: preferred_username
        """,
    ),
    _t(
        "rc/ood/ood_portal.prod.yml",
        "t29_uuid_secret",
        True,
        """
        ---
        servername: ondemand.rc.hsu.edu
        oidc_uri: /oidc
        oidc_provider_metadata_url: https://login.hsu.edu/.well-known/openid-configuration
        oidc_client_id: ondemand-rc
        oidc_client_secret: "{V}"
        oidc_remote_user_claim: preferred_username
        oidc_settings:
          OIDCPassIDTokenAs: "serialized"
          OIDCCryptoPassphrase: "{V2}"
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Research computing: Globus, jobs
    _t(
        "rc/globus/transfer_to_archive.py",
        "t29_globus_secret",
        True,
        """
        \"\"\"Nightly: move finished instrument runs from the hopper scratch collection to the archive.

        Uses the confidential client 'hsu-rc-archiver' (registered by jkim in developers.globus.org).
        \"\"\"
        import globus_sdk

        CLIENT_ID = "6d1f0e3a-5b2c-4a97-8e21-0c9f7b4d3a11"
        CLIENT_SECRET = "{V}"
        SCRATCH = "b3c6e8a2-41d7-4f0e-9a35-77d2c1e0f9b4"
        ARCHIVE = "e19a44d0-7c3b-4b2e-8f61-2a5d9c0b8e73"

        client = globus_sdk.ConfidentialAppAuthClient(CLIENT_ID, CLIENT_SECRET)
        authorizer = globus_sdk.ClientCredentialsAuthorizer(
            client, globus_sdk.TransferClient.scopes.all
        )
        tc = globus_sdk.TransferClient(authorizer=authorizer)

        tdata = globus_sdk.TransferData(tc, SCRATCH, ARCHIVE, label="nightly archive", sync_level="checksum")
        tdata.add_item("/scratch/instruments/done/", "/archive/instruments/", recursive=True)
        print(tc.submit_transfer(tdata)["task_id"])
        """,
    ),
    _t(
        "rc/globus/collections.md",
        "t29_uuid",
        False,
        """
        # Globus collections at HSU

        | collection                         | id                                     |
        |------------------------------------|----------------------------------------|
        | HSU Hopper Scratch (mapped)        | `{V}` |
        | HSU Research Archive (mapped)      | `{V2}` |
        | HSU Cryo-EM Facility (guest)       | `{V3}` |

        These ids are public - share them with collaborators so they can find the collections in
        the Globus web app. Client secrets are in the RC vault, never here.
        """,
    ),
    _t(
        "rc/user-examples/llm-finetune/run.slurm",
        "t29_hf",
        True,
        """
        #!/bin/bash
        #SBATCH -J llama-lora
        #SBATCH -p gpu --gres=gpu:h100:2 -t 24:00:00 --mem=200G

        module load python/3.11 cuda/12.4
        source ~/venvs/lora/bin/activate

        # gated model - needs my HF token
        huggingface-cli login --token {V}
        export HF_HOME=/scratch/$USER/hf-cache
        accelerate launch finetune.py --model meta-llama/Meta-Llama-3-8B --data data/advising.jsonl
        """,
    ),
    _t(
        "rc/user-examples/llm-finetune/README.md",
        "t29_doc_placeholder_hf",
        False,
        """
        # LoRA fine-tuning on hopper

        Gated models need a Hugging Face token with *read* access:

        ```bash
        huggingface-cli login --token {V}
        ```

        or put `HF_TOKEN={V2}` in `~/.bashrc` on the login node (mode 600). Tokens look like
        `hf_` followed by 34 letters. Never put them in the job script you share with the group.
        """,
    ),
    _t(
        "rc/modules/modulefiles/matlab/R2024a.lua",
        "t29_mac",
        False,
        """
        -- -*- lua -*-
        whatis("MATLAB R2024a (campus license)")
        help([[MATLAB via the network license server lic-matlab.hsu.edu (port 27000)]])

        local root = "/opt/apps/matlab/R2024a"
        prepend_path("PATH", pathJoin(root, "bin"))
        setenv("MLM_LICENSE_FILE", "27000@lic-matlab.hsu.edu")
        -- license server host ids (MAC) for the three-server quorum:
        --   lic-matlab1 {V}
        --   lic-matlab2 {V2}
        --   lic-matlab3 {V3}
        """,
    ),
    _t(
        "rc/docs/getting-started/ssh-keys.md",
        "t29_ssh_pub",
        False,
        """
        # Logging in to hopper with SSH keys

        Password logins are disabled on `hopper.rc.hsu.edu`. Add your **public** key in the
        account portal; it looks like this:

        ```
        {V}
        ```

        The RC admins' keys in `/etc/ssh/authorized_keys/rc-admin` for reference:

            {V2}
            {V3}

        Never upload the private key (`~/.ssh/id_ed25519` without `.pub`).
        """,
    ),
    _t(
        "rc/home-backup/mchen/.ssh/id_ed25519",
        "t29_openssh_key",
        True,
        """
        {V}
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Lab instruments and pipelines
    _t(
        "labs/cryoem/krios-pc/upload_config.ini",
        "t29_vendor_pw",
        True,
        """
        ; EPU session upload helper on the Krios support PC (KRIOS-SUPPORT-01, Windows 10 LTSC)
        [share]
        unc = \\\\cryoem-nas.hsu.edu\\raw
        user = HSU\\svc-krios
        password = {V}

        [instrument]
        ; local Windows account created by the vendor engineer at install
        local_admin = FEIservice
        local_admin_password = {V2}

        [transfer]
        min_age_minutes = 20
        delete_after_verify = false
        """,
    ),
    _t(
        "labs/cryoem/pipeline/ingest_minio.py",
        "t29_aws_secret",
        True,
        """
        \"\"\"Move finished EPU movies from the NAS into the lab's MinIO bucket and queue preprocessing.\"\"\"
        from pathlib import Path

        from minio import Minio

        client = Minio(
            "minio.labs.hsu.edu:9000",
            access_key="cryoem-ingest",
            secret_key="{V}",
            secure=True,
        )

        for movie in Path("/mnt/raw/done").glob("**/*.tiff"):
            client.fput_object("cryoem-raw", str(movie.relative_to("/mnt/raw/done")), str(movie))
            movie.with_suffix(".uploaded").touch()
        """,
    ),
    _t(
        "labs/cryoem/CITATION.cff",
        "t29_orcid",
        False,
        """
        cff-version: 1.2.0
        message: "If you use this pipeline, please cite it as below."
        title: "HSU Cryo-EM preprocessing pipeline"
        version: 2.3.0
        date-released: 2024-05-17
        authors:
          - family-names: Kim
            given-names: Jae-won
            orcid: "https://orcid.org/{V}"
          - family-names: Ibarra
            given-names: Lena
            orcid: "https://orcid.org/{V2}"
        """,
    ),
    _t(
        "labs/psych/redcap_export.R",
        "t29_redcap",
        True,
        """
        # Weekly export from REDCap for the sleep study (IRB 2023-0412)
        library(REDCapR)
        library(dplyr)

        uri   <- "https://redcap.hsu.edu/api/"
        token <- "{V}"   # project 1184 (Sleep & Memory), API user: rsingh

        ds <- redcap_read(redcap_uri = uri, token = token)$data
        ds %>%
          filter(!is.na(psqi_total)) %>%
          write.csv("data/sleep_weekly.csv", row.names = FALSE)
        """,
    ),
    _t(
        "labs/psych/redcap_export_secure.R",
        "t29_r_ref",
        False,
        """
        # Same export, token read from the keyring / .Renviron (see lab wiki)
        library(REDCapR)

        uri   <- "https://redcap.hsu.edu/api/"
        token <- {V}

        ds <- redcap_read(redcap_uri = uri, token = token)$data
        """,
    ),
    _t(
        "labs/chem/nmr/airflow/airflow_connections.yaml",
        "t29_url_pw",
        True,
        """
        # imported with: airflow connections import airflow_connections.yaml
        lims_db:
          conn_type: postgres
          host: lims-db.chem.hsu.edu
          login: nmr_loader
          password: {V}
          schema: lims
          port: 5432
        nmr_sftp:
          conn_type: sftp
          host: nmr600.chem.hsu.edu
          login: topspin
          password: {V2}
        """,
    ),
    _t(
        "labs/chem/nmr/airflow/docker-compose.yaml",
        "t29_compose_ref",
        False,
        """
        x-airflow-common: &airflow-common
          image: apache/airflow:2.9.2
          environment:
            AIRFLOW__CORE__EXECUTOR: LocalExecutor
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: postgresql+psycopg2://airflow:${AIRFLOW_DB_PASSWORD}@postgres/airflow
            AIRFLOW__WEBSERVER__SECRET_KEY: "{V}"
            AIRFLOW_CONN_LIMS_DB: "{V2}"

        services:
          postgres:
            image: postgres:16
            environment:
              POSTGRES_USER: airflow
              POSTGRES_PASSWORD: "{V3}"
        """,
    ),
    _t(
        "labs/genomics/nextflow.config",
        "t29_aws_pair_groovy",
        True,
        """
        // HSU Genomics Core - run on AWS Batch for overflow when hopper is full
        process.executor = 'awsbatch'
        process.queue = 'hsu-genomics-spot'
        workDir = 's3://hsu-genomics-work/nf'

        aws {
            region = 'us-east-2'
            {IV}
            batch.cliPath = '/home/ec2-user/miniconda/bin/aws'
        }
        """,
    ),
    _t(
        "labs/genomics/nextflow.config.template",
        "t29_placeholder",
        False,
        """
        process.executor = 'awsbatch'
        workDir = 's3://hsu-genomics-work/nf'

        aws {
            region = 'us-east-2'
            accessKey = '{V}'
            secretKey = '{V2}'
        }
        """,
    ),
    _t(
        "labs/genomics/data/.gitattributes-lfs/sample_R1.fastq.gz",
        "t29_lfs_oid",
        False,
        """
        version https://git-lfs.github.com/spec/v1
        oid sha256:{V}
        size 2184431022
        """,
    ),
    _t(
        "labs/neuro/matlab/load_sessions.m",
        "t29_pw",
        True,
        """
        % load_sessions.m - pull spike-sorted sessions from the lab MySQL (neurolab-db)
        % author: grad student, 2023; ask Dr. Ibarra before changing the schema
        conn = database('neurodata', 'neuro_ro', '{V}', ...
            'Vendor', 'MySQL', 'Server', 'neurolab-db.bio.hsu.edu', 'PortNumber', 3306);
        sessions = fetch(conn, 'SELECT id, animal, date, path FROM sessions WHERE sorted = 1');
        close(conn);
        disp(height(sessions));
        """,
    ),
    _t(
        "labs/neuro/julia/Config.jl",
        "t29_julia_ref",
        False,
        """
        module Config

        const DB_HOST = get(ENV, "NEURO_DB_HOST", "neurolab-db.bio.hsu.edu")
        const DB_USER = "neuro_ro"
        const DB_PASS = {V}

        end
        """,
    ),
    _t(
        "courses/cs2110-intro/help-queue-bot/app.py",
        "t29_slack_bot",
        True,
        """
        # Office-hours queue bot for the CS 2110 Slack workspace (TA-maintained, runs on a lab VM)
        import os

        from slack_bolt import App
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        app = App(token="{V}")
        queue: list[str] = []


        @app.command("/oh")
        def join(ack, command, say):
            ack()
            queue.append(command["user_id"])
            say(f"<@{command['user_id']}> you are #{len(queue)} in the queue")


        if __name__ == "__main__":
            SocketModeHandler(app, os.environ["SLACK_APP_TOKEN"]).start()
        """,
    ),
    _t(
        "labs/physics/daq/README.md",
        "t29_doi",
        False,
        """
        # cryostat DAQ

        Data and analysis code for the papers below are archived on Zenodo:

        - Thermal transport in twisted bilayers - doi:{V}
        - Noise thermometry at 10 mK - doi:{V2}

        Use `python -m daq.record --help` for the recorder options.
        """,
    ),
    _t(
        "labs/bio/azure/upload_images.ps1",
        "t29_azure_storage",
        True,
        """
        # Upload confocal images from the microscope PC to the lab storage account
        $ErrorActionPreference = "Stop"
        $conn = "{V}"
        $ctx = New-AzStorageContext -ConnectionString $conn
        Get-ChildItem D:\\Confocal\\Export -Filter *.czi | ForEach-Object {
            Set-AzStorageBlobContent -File $_.FullName -Container "confocal" -Blob $_.Name -Context $ctx -Force
        }
        """,
    ),
    _t(
        "labs/bio/azure/upload_images_mi.ps1",
        "t29_ps_ref_az",
        False,
        """
        # Managed-identity version (runs on the lab VM, no keys on the microscope PC)
        Connect-AzAccount -Identity
        $ctx = New-AzStorageContext -StorageAccountName hsuinstrumentraw -UseConnectedAccount
        $token = {V}
        Get-ChildItem D:\\Confocal\\Export -Filter *.czi | ForEach-Object {
            Set-AzStorageBlobContent -File $_.FullName -Container "confocal" -Blob $_.Name -Context $ctx
        }
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Student mobile apps
    _t(
        "mobile/hsu-app-android/gradle.properties",
        "t29_pw",
        True,
        """
        org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
        android.useAndroidX=true
        kotlin.code.style=official
        # release signing (keystore lives in the team drive: Mobile/keys/hsu-release.jks)
        HSU_RELEASE_STORE_FILE=../keys/hsu-release.jks
        HSU_RELEASE_STORE_PASSWORD={V}
        HSU_RELEASE_KEY_ALIAS=hsu-app
        HSU_RELEASE_KEY_PASSWORD={V2}
        """,
    ),
    _t(
        "mobile/hsu-app-android/app/build.gradle.kts",
        "t29_kts_ref",
        False,
        """
        android {
            namespace = "edu.hsu.mobile"
            compileSdk = 34

            signingConfigs {
                create("release") {
                    storeFile = file(System.getenv("HSU_RELEASE_STORE_FILE") ?: "release.jks")
                    storePassword = {V}
                    keyAlias = "hsu-app"
                    keyPassword = {V2}
                }
            }
            defaultConfig {
                applicationId = "edu.hsu.mobile"
                minSdk = 26
                targetSdk = 34
                manifestPlaceholders["MAPS_API_KEY"] = providers.gradleProperty("MAPS_API_KEY").getOrElse("")
            }
        }
        """,
    ),
    _t(
        "mobile/hsu-app-android/local.properties",
        "t29_google_api",
        True,
        """
        ## This file must *NOT* be checked into Version Control Systems,
        # as it contains information specific to your local configuration.
        sdk.dir=/Users/akoh/Library/Android/sdk
        MAPS_API_KEY={V}
        PLACES_API_KEY={V2}
        """,
    ),
    _t(
        "mobile/hsu-app-android/settings.gradle.kts",
        "t29_mapbox_sk",
        True,
        """
        dependencyResolutionManagement {
            repositories {
                google()
                mavenCentral()
                maven {
                    url = uri("https://api.mapbox.com/downloads/v2/releases/maven")
                    authentication { create<BasicAuthentication>("basic") }
                    credentials {
                        username = "mapbox"
                        password = "{V}"
                    }
                }
            }
        }
        rootProject.name = "hsu-app"
        include(":app")
        """,
    ),
    _t(
        "mobile/hsu-app-android/app/src/main/res/values/mapbox_access_token.xml",
        "t29_mapbox_pk",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <resources xmlns:tools="http://schemas.android.com/tools">
            <!-- public token, URL-restricted to the app; the downloads (sk.) token is in gradle props -->
            <string name="mapbox_access_token" translatable="false" tools:ignore="UnusedResources">{V}</string>
        </resources>
        """,
    ),
    _t(
        "mobile/hsu-app-android/app/src/main/res/values-es/strings.xml",
        "t29_ui_text",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <string name="login_title">Iniciar sesión con NetID</string>
            <string name="login_password_hint">Contraseña</string>
            <string name="login_error_password">{V}</string>
            <string name="settings_token_help">{V2}</string>
        </resources>
        """,
    ),
    _t(
        "mobile/hsu_flutter/test/auth_service_test.dart",
        "t29_fake",
        False,
        """
        import 'package:flutter_test/flutter_test.dart';
        import 'package:hsu_flutter/services/auth_service.dart';

        void main() {
          test('stores refresh token', () async {
            final store = InMemoryTokenStore();
            final auth = AuthService(store: store);
            await auth.saveTokens(access: '{V}', refresh: '{V2}');
            expect(await store.read('refresh'), '{V2}');
          });
        }
        """,
    ),
    _t(
        "mobile/push-service/src/fcm.js",
        "t29_fcm_key",
        True,
        """
        // Legacy FCM sender for class-cancellation alerts (still used by the 2.x app)
        const axios = require("axios");

        const SERVER_KEY = "{V}";

        module.exports.sendToTopic = async function sendToTopic(topic, title, body) {
          return axios.post(
            "https://fcm.googleapis.com/fcm/send",
            { to: `/topics/${topic}`, notification: { title, body } },
            { headers: { Authorization: `key=${SERVER_KEY}`, "Content-Type": "application/json" } },
          );
        };
        """,
    ),
    _t(
        "mobile/push-service/firebase-adminsdk.json",
        "t29_gcp_sa_key",
        True,
        """
        {
          "type": "service_account",
          "project_id": "hsu-mobile-prod",
          "private_key_id": "4f0c2b8e9a1d7c3e5b6a0f9d8c7b6a5e4d3c2b1a",
          "private_key": "{V}",
          "client_email": "firebase-adminsdk-x7k2p@hsu-mobile-prod.iam.gserviceaccount.com",
          "client_id": "104829376510293847561",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "mobile/hsu-ios/HSU/Services/DiningAPI.swift",
        "t29_pw",
        True,
        """
        import Foundation

        /// Dining-hall menus come from the vendor's API (campus dining contract 2022-118).
        struct DiningAPI {
            static let base = URL(string: "https://api.dinewise-campus.com/v1")!
            // vendor gave us one login for all clients; rotating needs a vendor ticket
            static let username = "hsu_mobile"
            static let password = "{V}"

            func menus(for hall: String) async throws -> Data {
                var req = URLRequest(url: Self.base.appendingPathComponent("locations/\\(hall)/menus"))
                let auth = Data("\\(Self.username):\\(Self.password)".utf8).base64EncodedString()
                req.setValue("Basic \\(auth)", forHTTPHeaderField: "Authorization")
                return try await URLSession.shared.data(for: req).0
            }
        }
        """,
    ),
    _t(
        "mobile/hsu-ios/HSU/Info.plist",
        "t29_google_client_id",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
            <key>CFBundleIdentifier</key>
            <string>edu.hsu.mobile</string>
            <key>GIDClientID</key>
            <string>{V}</string>
            <key>NSLocationWhenInUseUsageDescription</key>
            <string>Shows your position on the campus map.</string>
        </dict>
        </plist>
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Alumni & advancement CRM
    _t(
        "advancement/sfdx/.github/workflows/deploy.yml",
        "t29_ci_ref",
        False,
        """
        name: deploy-advancement-org
        on:
          push:
            branches: [main]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: npm install --global @salesforce/cli
              - name: Auth
                run: |
                  echo "{V}" > ./authfile
                  sf org login sfdx-url --sfdx-url-file ./authfile --alias prod
              - run: sf project deploy start --target-org prod --test-level RunLocalTests
        """,
    ),
    _t(
        "advancement/sfdx/scripts/authfile.txt",
        "t29_sfdx_url",
        True,
        """
        {V}
        """,
    ),
    _t(
        "advancement/sfdx/scripts/debug_session.txt",
        "t29_sf_token",
        True,
        """
        $ sf org display --target-org prod --verbose
        === Org Description
         KEY              VALUE
         ──────────────── ──────────────────────────────────────────────────────
         Access Token     {V}
         Alias            prod
         Api Version      61.0
         Connected Status Connected
         Instance Url     https://halvorsen-advancement.my.salesforce.com
         Username         integration@hsu.edu.advance
        """,
    ),
    _t(
        "advancement/sfdx/force-app/main/default/classes/BlackbaudSkyClient.cls",
        "t29_sky_key",
        True,
        """
        public with sharing class BlackbaudSkyClient {
            // SKY API subscription key (developer.blackbaud.com, "HSU Advancement" account)
            private static final String SUBSCRIPTION_KEY = '{V}';
            private static final String BASE = 'https://api.sky.blackbaud.com/constituent/v1';

            public static HttpResponse getConstituent(String id, String accessToken) {
                HttpRequest req = new HttpRequest();
                req.setEndpoint(BASE + '/constituents/' + id);
                req.setMethod('GET');
                req.setHeader('Bb-Api-Subscription-Key', SUBSCRIPTION_KEY);
                req.setHeader('Authorization', 'Bearer ' + accessToken);
                return new Http().send(req);
            }
        }
        """,
    ),
    _t(
        "advancement/sfdx/force-app/main/default/classes/BlackbaudSkyClientTest.cls",
        "t29_fake",
        False,
        """
        @IsTest
        private class BlackbaudSkyClientTest {
            @IsTest
            static void sendsSubscriptionKey() {
                Test.setMock(HttpCalloutMock.class, new SkyMock('{V}'));
                HttpResponse res = BlackbaudSkyClient.getConstituent('280', '{V2}');
                System.assertEquals(200, res.getStatusCode());
            }
        }
        """,
    ),
    _t(
        "advancement/giving-site/.env",
        "t29_stripe",
        True,
        """
        NODE_ENV=production
        PUBLIC_URL=https://give.hsu.edu
        STRIPE_SECRET_KEY={V}
        STRIPE_REPORTING_KEY={V2}
        """,
    ),
    _t(
        "advancement/giving-site/src/pages/give.html",
        "t29_stripe_pk",
        False,
        """
        <!doctype html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <title>Give to Halvorsen State</title>
          <script src="https://js.stripe.com/v3/"></script>
        </head>
        <body>
          <form id="gift-form">
            <label>Amount <input name="amount" type="number" min="5" step="1"></label>
            <select name="fund">
              <option value="GRIF-SCHOL">Griffin Scholarship Fund</option>
              <option value="LIB-ENDOW">Library Endowment</option>
            </select>
            <div id="card-element"></div>
            <button type="submit">Give now</button>
          </form>
          <script>
            const stripe = Stripe("{V}");
            const elements = stripe.elements();
            elements.create("card").mount("#card-element");
          </script>
        </body>
        </html>
        """,
    ),
    _t(
        "advancement/giving-site/src/server/paypal.ts",
        "t29_paypal_secret",
        True,
        """
        const PAYPAL_API = "https://api-m.paypal.com";
        const CLIENT_ID = "AbX3k9Qv7LmZ2pR8sT1uW4yN6cE0hJ5gF9dK2aS7bV3nM8qP1xL4zC6rT0eY9uI";
        const CLIENT_SECRET = "{V}";

        export async function accessToken(): Promise<string> {
          const auth = Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString("base64");
          const res = await fetch(`${PAYPAL_API}/v1/oauth2/token`, {
            method: "POST",
            headers: { Authorization: `Basic ${auth}` },
            body: "grant_type=client_credentials",
          });
          return (await res.json()).access_token;
        }
        """,
    ),
    _t(
        "advancement/giving-site/src/server/paypal.test.ts",
        "t29_example_cred",
        False,
        """
        import { describe, expect, it } from "vitest";
        import { redact } from "./logging";

        describe("redact", () => {
          it("masks well-known documentation credentials too", () => {
            expect(redact("key={V}")).toBe("key=[redacted]");
            expect(redact("{V2}")).toBe("[redacted]");
          });
        });
        """,
    ),
    _t(
        "advancement/email/mailchimp_sync.rb",
        "t29_mailchimp",
        True,
        """
        # Sync reunion-year alumni into the Mailchimp audience "Reunion 2025"
        require "MailchimpMarketing"
        require "csv"

        client = MailchimpMarketing::Client.new
        client.set_config({ api_key: "{V}", server: "{V}".split("-").last })

        CSV.foreach("reunion_2025.csv", headers: true) do |row|
          client.lists.set_list_member("a1b2c3d4e5", Digest::MD5.hexdigest(row["email"].downcase), {
            email_address: row["email"], status_if_new: "subscribed",
            merge_fields: { FNAME: row["first"], CLASSYEAR: row["class_year"] }
          })
        end
        """,
    ),
    _t(
        "advancement/email/sendgrid_receipts.py",
        "t29_sendgrid",
        True,
        """
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import Mail

        sg = SendGridAPIClient("{V}")


        def send_receipt(to_email: str, amount: str, fund: str) -> None:
            msg = Mail(
                from_email="giving@hsu.edu",
                to_emails=to_email,
                subject="Thank you for your gift to Halvorsen State",
                html_content=f"<p>We received your gift of ${amount} to the {fund}.</p>",
            )
            sg.send(msg)
        """,
    ),
    _t(
        "advancement/db/crm_replica_audit.sql",
        "t29_mysql_hash",
        False,
        """
        -- SELECT user, host, authentication_string FROM mysql.user (audit 2024-10-02)
        -- +-------------+------------+-------------------------------------------+
        -- | advance_bi  | 10.40.%    | {V} |
        -- | advance_etl | 10.40.12.% | {V2} |
        -- +-------------+------------+-------------------------------------------+
        ALTER USER 'advance_bi'@'10.40.%' PASSWORD EXPIRE INTERVAL 365 DAY;
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Campus IT: Wi-Fi, RADIUS, network
    _t(
        "campus-it/freeradius/clients.conf",
        "t29_shared_secret",
        True,
        """
        # FreeRADIUS clients - wireless controllers and VPN
        client wlc-main {
            ipaddr = 10.16.0.10
            secret = {V}
            shortname = wlc-main
            nas_type = other
        }

        client wlc-dorms {
            ipaddr = 10.16.0.11
            secret = {V2}
            shortname = wlc-dorms
        }

        client eduroam-flr1 {
            ipaddr = 192.0.2.55
            secret = {V3}
            shortname = eduroam-us-flr1
        }
        """,
    ),
    _t(
        "campus-it/freeradius/mods-config/files/authorize",
        "t29_sha512crypt",
        False,
        """
        # local accounts for the network team's break-glass logins on the switches (TACACS fallback)
        netops-bg      Crypt-Password := "{V}"
                       Service-Type = Administrative-User
        noc-readonly   Crypt-Password := "{V2}"
                       Service-Type = NAS-Prompt-User
        DEFAULT        Auth-Type := Reject
        """,
    ),
    _t(
        "campus-it/wifi/eduroam-linux/wpa_supplicant.conf",
        "t29_pw",
        True,
        """
        # eduroam on the digital-signage Raspberry Pis (lobby screens) - uses the signage service account
        ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
        update_config=1
        country=US

        network={
            ssid="eduroam"
            key_mgmt=WPA-EAP
            eap=PEAP
            identity="svc-signage@hsu.edu"
            anonymous_identity="anonymous@hsu.edu"
            password="{V}"
            phase2="auth=MSCHAPV2"
            ca_cert="/etc/ssl/certs/hsu-radius-ca.pem"
        }
        """,
    ),
    _t(
        "lms/classroom-sync/client_secret.json",
        "t29_gcp_oauth_secret",
        True,
        """
        {
          "web": {
            "client_id": "583920174611-k2q8v0h3n7c5r1m9x4t6b8d2f0j7p3s1.apps.googleusercontent.com",
            "project_id": "hsu-classroom-sync",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "client_secret": "{V}",
            "redirect_uris": ["https://lms-util-01.hsu.edu/classroom/oauth2callback"]
          }
        }
        """,
    ),
    _t(
        "campus-it/wifi/guest-portal/templates/login.html",
        "t29_ui_text",
        False,
        """
        <!doctype html>
        <html lang="en">
        <head><meta charset="utf-8"><title>HSU-Guest Wi-Fi</title></head>
        <body>
          <h1>Welcome to HSU-Guest</h1>
          <form method="post" action="/login">
            <label for="email">Email</label>
            <input id="email" name="email" type="email" required>
            <label for="password">Sponsor code</label>
            <input id="password" name="password" type="password" autocomplete="off">
            <p class="hint">{V}</p>
            <button>Connect</button>
          </form>
        </body>
        </html>
        """,
    ),
    _t(
        "campus-it/network/configs/core-sw-ellison-1.cfg",
        "t29_cisco_hash",
        False,
        """
        !
        hostname core-sw-ellison-1
        !
        enable secret {V}
        !
        username netops privilege 15 secret {V2}
        !
        aaa new-model
        aaa authentication login default group tacacs+ local
        !
        interface Vlan412
         description HSU-IoT Ellison
         ip address 10.41.2.1 255.255.255.0
        !
        """,
    ),
    _t(
        "campus-it/network/configs/edge-sw-rowe-3.cfg",
        "t29_shared_secret",
        True,
        """
        !
        hostname edge-sw-rowe-3
        !
        snmp-server community {V} RO 98
        snmp-server community {V2} RW 99
        snmp-server location Rowe Library IDF-3
        !
        tacacs server ise-1
         address ipv4 10.16.0.30
         key 0 {V3}
        !
        """,
    ),
    _t(
        "campus-it/network/ansible/group_vars/switches.yml",
        "t29_ansible_vault",
        False,
        """
        ---
        ansible_network_os: cisco.ios.ios
        ansible_user: netops
        ansible_password: {IV}
        snmp_ro_community: {IV2}
        """,
    ),
    # ================================================================ Campus IT: printing, doors, identity
    _t(
        "campus-it/papercut/scripts/sync_quotas.py",
        "t29_papercut_token",
        True,
        """
        \"\"\"Top up student print quotas at the start of term (PaperCut MF XML-RPC).\"\"\"
        import xmlrpc.client

        SERVER = "https://print.hsu.edu:9192/rpc/api/xmlrpc"
        AUTH_TOKEN = "{V}"  # auth.webservices.auth-token in Options > Config editor

        proxy = xmlrpc.client.ServerProxy(SERVER)

        for line in open("/srv/feeds/enrolled_students.txt"):
            user = line.strip()
            proxy.api.adjustUserAccountBalance(AUTH_TOKEN, user, 15.00, "Fall term quota")
        """,
    ),
    _t(
        "campus-it/door-access/controller-sync/config.toml",
        "t29_pw",
        True,
        """
        [onguard]
        base_url = "https://onguard.facilities.hsu.edu/api/access/onguard/openaccess"
        username = "svc_residence_sync"
        password = "{V}"
        directory = "id-1"

        [sis]
        dsn = "oracle://sis_housing@sisdb-scan.hsu.edu:1521/SISPROD"
        password = "{V2}"

        [sync]
        halls = ["Ellison", "Marsh", "Kline Tower"]
        """,
    ),
    _t(
        "campus-it/door-access/controller-sync/badges_test.toml",
        "t29_badge",
        False,
        """
        # Test badges for the residence sync (cards are deactivated in OnGuard, facility code 118)
        [[badge]]
        holder = "Test Resident A"
        card = "{V}"

        [[badge]]
        holder = "Test Resident B"
        card = "{V2}"
        """,
    ),
    _t(
        "campus-it/identity/duo/authproxy.cfg",
        "t29_duo_skey",
        True,
        """
        [main]
        debug=false

        [ad_client]
        host=ad-dc01.hsu.edu
        host_2=ad-dc02.hsu.edu
        service_account_username=svc-duoproxy
        service_account_password={V2}
        search_dn=DC=hsu,DC=edu

        [radius_server_auto]
        ikey=DIWJ8X5JQ2NRHZ4V7M3K
        skey={V}
        api_host=api-4f2a9c1e.duosecurity.com
        radius_ip_1=10.16.0.40
        radius_secret_1={V3}
        client=ad_client
        port=1812
        failmode=safe
        """,
    ),
    _t(
        "campus-it/identity/okta/deprovision.ps1",
        "t29_okta",
        True,
        """
        # Deactivate Okta users whose AD accounts were disabled by the HR/SIS feed
        $OktaOrg = "https://hsu.okta.com"
        $ApiToken = "{V}"
        $headers = @{ Authorization = "SSWS $ApiToken"; Accept = "application/json" }

        Get-ADUser -Filter { Enabled -eq $false } -SearchBase "OU=People,DC=hsu,DC=edu" | ForEach-Object {
            $login = "$($_.SamAccountName)@hsu.edu"
            $user = Invoke-RestMethod -Uri "$OktaOrg/api/v1/users/$login" -Headers $headers
            Invoke-RestMethod -Method Post -Uri "$OktaOrg/api/v1/users/$($user.id)/lifecycle/deactivate" -Headers $headers
        }
        """,
    ),
    _t(
        "campus-it/identity/ad/new-lab-accounts.ps1",
        "t29_weak_pw",
        True,
        """
        # Create the shared lab-PC accounts for the Fall term (Ellison 120 teaching lab)
        Import-Module ActiveDirectory
        $pw = ConvertTo-SecureString "{V}" -AsPlainText -Force
        1..40 | ForEach-Object {
            $name = "ell120-{0:D2}" -f $_
            New-ADUser -Name $name -SamAccountName $name -Path "OU=LabAccounts,DC=hsu,DC=edu" `
                -AccountPassword $pw -Enabled $true -PasswordNeverExpires $true
        }
        """,
    ),
    _t(
        "campus-it/identity/ad/reset-password.ps1",
        "t29_ps_ref",
        False,
        """
        param([Parameter(Mandatory)] [string] $Sam)
        # helpdesk: reset a student's password and force change at next logon
        $new = {V}
        Set-ADAccountPassword -Identity $Sam -Reset -NewPassword $new
        Set-ADUser -Identity $Sam -ChangePasswordAtLogon $true
        """,
    ),
    _t(
        "campus-it/identity/entra/app-registrations.tf",
        "t29_tf_ref",
        False,
        """
        resource "azuread_application" "canvas_sso" {
          display_name = "HSU Online Canvas SSO"
        }

        resource "azuread_application_password" "canvas_sso" {
          application_id = azuread_application.canvas_sso.id
          end_date       = "2026-06-30T00:00:00Z"
        }

        resource "vault_kv_secret_v2" "canvas_sso" {
          mount = "kv"
          name  = "lms/canvas/sso"
          data_json = jsonencode({
            client_secret = azuread_application_password.canvas_sso.value
            db_password   = {V}
          })
        }
        """,
    ),
    _t(
        "campus-it/identity/entra/graph_sync.py",
        "t29_ms_secret",
        True,
        """
        import msal

        TENANT = "hsu.onmicrosoft.com"
        CLIENT_ID = "91c4e2d7-0b3a-4f68-9e15-7a2c8d0f4b13"
        CLIENT_SECRET = "{V}"

        app = msal.ConfidentialClientApplication(
            CLIENT_ID,
            authority=f"https://login.microsoftonline.com/{TENANT}",
            client_credential=CLIENT_SECRET,
        )
        token = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
        print(token.get("expires_in"))
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Course repositories (students, TAs)
    _t(
        "courses/cs3200-databases/hw4-team7/docker-compose.yml",
        "t29_weak_pw",
        True,
        """
        version: "3.9"
        services:
          db:
            image: mysql:8.0
            environment:
              MYSQL_ROOT_PASSWORD: {V}
              MYSQL_DATABASE: bookstore
              MYSQL_USER: team7
              MYSQL_PASSWORD: {V2}
            ports:
              - "3306:3306"
          app:
            build: .
            environment:
              DATABASE_URL: mysql://team7:{V2}@db:3306/bookstore
            depends_on: [db]
        """,
    ),
    _t(
        "courses/cs3200-databases/hw4-team7/src/main/java/edu/hsu/bookstore/Db.java",
        "t29_pw",
        True,
        """
        package edu.hsu.bookstore;

        import java.sql.Connection;
        import java.sql.DriverManager;
        import java.sql.SQLException;

        public class Db {
            // TODO move to env before submitting!!
            private static final String URL = "jdbc:mysql://cs3200-db.cs.hsu.edu:3306/team7_bookstore";
            private static final String USER = "team7";
            private static final String PASSWORD = "{V}";

            public static Connection connect() throws SQLException {
                return DriverManager.getConnection(URL, USER, PASSWORD);
            }
        }
        """,
    ),
    _t(
        "courses/cs3200-databases/lectures/week06-security.md",
        "t29_doc_host_uri",
        False,
        """
        # Week 6 - Database security

        Never hard-code credentials. A connection string like

            {V}

        is fine in **lecture notes** because it points at a documentation host or your own laptop,
        but in your team repo use an environment variable:

        ```python
        conn = psycopg.connect(os.environ["DATABASE_URL"])
        ```

        Another example you will see in tutorials: `{V2}`.
        """,
    ),
    _t(
        "courses/cs3200-databases/lectures/week06-lab.sql",
        "t29_pw",
        True,
        """
        -- Lab 6: roles and grants. Run on YOUR section database (cs3200-db.cs.hsu.edu).
        -- The TA account below is shared by all TAs of section 02; rotate after the semester.
        CREATE ROLE ta_section02 WITH LOGIN PASSWORD '{V}';
        GRANT CONNECT ON DATABASE cs3200_s02 TO ta_section02;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO ta_section02;

        CREATE ROLE app_readonly NOLOGIN;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_readonly;
        """,
    ),
    _t(
        "courses/cs3200-databases/lectures/week06-lab-solution.sql",
        "t29_scram",
        False,
        """
        -- SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE 'ta_%';
        --   rolname      | rolpassword
        -- ---------------+-------------------------------------------------------------
        --  ta_section01  | {V}
        --  ta_section02  | {V2}
        -- Note: Postgres stores a SCRAM verifier, not the password.
        """,
    ),
    _t(
        "courses/cs4780-ml/project/notebooks/01_baseline.ipynb",
        "t29_openai",
        True,
        """
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# Baseline: zero-shot classification of course reviews"]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "from openai import OpenAI\\n",
            "client = OpenAI(api_key=\\"{V}\\")\\n",
            "labels = ['workload', 'teaching', 'grading', 'other']"
           ]
          },
          {
           "cell_type": "code",
           "execution_count": 4,
           "metadata": {},
           "outputs": [
            {
             "name": "stdout",
             "output_type": "stream",
             "text": ["accuracy on dev: 0.71\\n"]
            }
           ],
           "source": ["print(f'accuracy on dev: {evaluate(client, dev):.2f}')"]
          }
         ],
         "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "courses/cs4780-ml/project/notebooks/02_finetune.ipynb",
        "t29_png_b64",
        False,
        """
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
             "metadata": {},
             "output_type": "display_data"
            }
           ],
           "source": ["plt.plot(history['loss']); plt.title('training loss')"]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "courses/cs4780-ml/project/kaggle.json",
        "t29_kaggle",
        True,
        """
        {"username":"jmartinez-hsu","key":"{V}"}
        """,
    ),
    _t(
        "courses/cs4780-ml/project/src/llm_judge.py",
        "t29_anthropic",
        True,
        """
        import anthropic

        # course-provided key (shared by the class, capped at $50/team) - do not share outside the course
        client = anthropic.Anthropic(api_key="{V}")


        def judge(answer: str, rubric: str) -> str:
            msg = client.messages.create(
                model="claude-3-5-haiku-latest",
                max_tokens=300,
                messages=[{"role": "user", "content": f"Rubric:\\n{rubric}\\n\\nAnswer:\\n{answer}"}],
            )
            return msg.content[0].text
        """,
    ),
    _t(
        "courses/cs4780-ml/project/src/config.py",
        "t29_py_ref_openai",
        False,
        """
        import os

        from dotenv import load_dotenv

        load_dotenv()
        OPENAI_API_KEY = {V}
        WANDB_KEY = os.getenv("WANDB_API_KEY")
        """,
    ),
    _t(
        "courses/cs4780-ml/handouts/api-keys.md",
        "t29_doc_placeholder_openai",
        False,
        """
        # Using the course API keys

        Each team gets one key through the course portal. Put it in `.env` (already in `.gitignore`):

        ```
        OPENAI_API_KEY={V}
        ```

        Keys start with `sk-proj-`; if you see `{V2}` in a submission we will ask you to rotate it.
        """,
    ),
    _t(
        "courses/cs2110-intro/hw3-twitterbot/bot.py",
        "t29_telegram",
        True,
        """
        # HW3 extension: my telegram bot that posts the dining hall menu
        import requests

        BOT_TOKEN = "{V}"
        CHAT_ID = -1002031845512


        def post(text: str) -> None:
            requests.post(
                f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage",
                data={"chat_id": CHAT_ID, "text": text},
                timeout=10,
            )


        if __name__ == "__main__":
            post("Today at Marsh Hall: tacos")
        """,
    ),
    _t(
        "courses/cs2110-intro/hw5-discord/index.js",
        "t29_discord_webhook",
        True,
        """
        // posts a message when someone pushes to our group repo (hw5 bonus)
        const WEBHOOK = "{V}";

        async function notify(msg) {
          await fetch(WEBHOOK, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ content: msg, username: "hw5-bot" }),
          });
        }

        notify(process.argv.slice(2).join(" ") || "pushed!");
        """,
    ),
    _t(
        "courses/cs2110-intro/hw2/Login.java",
        "t29_ui_text",
        False,
        """
        import java.util.Scanner;

        public class Login {
            public static void main(String[] args) {
                Scanner in = new Scanner(System.in);
                System.out.print("Username: ");
                String user = in.nextLine();
                System.out.print("Password: ");
                String password = in.nextLine();
                if (password.length() < 12) {
                    System.out.println("{V}");
                }
            }
        }
        """,
    ),
    _t(
        "courses/cs3410-systems/lab7-sockets/client.c",
        "t29_pw",
        True,
        """
        /* Lab 7: authenticated echo client. Build: gcc -Wall -o client client.c */
        #include <arpa/inet.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <unistd.h>

        #define SERVER "10.60.3.21"   /* cs3410 lab server */
        #define PORT 7410
        #define LAB_USER "group14"
        #define LAB_PASS "{V}"

        int main(void) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(PORT)};
            inet_pton(AF_INET, SERVER, &addr.sin_addr);
            if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("connect"); return 1; }
            char hello[128];
            snprintf(hello, sizeof hello, "AUTH %s %s\\n", LAB_USER, LAB_PASS);
            write(fd, hello, strlen(hello));
            close(fd);
            return 0;
        }
        """,
    ),
    _t(
        "courses/cs3410-systems/lab7-sockets/server_test.c",
        "t29_fake",
        False,
        """
        #include <assert.h>
        #include <string.h>
        #include "auth.h"

        int main(void) {
            /* the lab server accepts this only when built with -DTESTING */
            assert(check_auth("group00", "{V}") == 1);
            assert(check_auth("group00", "wrong") == 0);
            return 0;
        }
        """,
    ),
    _t(
        "courses/cs4550-web/project-studybuddy/server/.env",
        "t29_url_pw",
        True,
        """
        PORT=4000
        MONGO_URI=mongodb+srv://studybuddy:{V}@cluster0.h7kq2.mongodb.net/studybuddy?retryWrites=true&w=majority
        SESSION_SECRET={V2}
        """,
    ),
    _t(
        "courses/cs4550-web/project-studybuddy/server/src/auth.go",
        "t29_go_ref",
        False,
        """
        package auth

        import (
        	"os"

        	"github.com/golang-jwt/jwt/v5"
        )

        var signingKey = []byte({V})

        func Sign(userID string) (string, error) {
        	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": userID}).SignedString(signingKey)
        }

        var _ = os.Getenv
        """,
    ),
    _t(
        "courses/cs4550-web/project-studybuddy/server/src/jwt.rs",
        "t29_flask_key",
        True,
        """
        use jsonwebtoken::{encode, EncodingKey, Header};
        use serde::Serialize;

        #[derive(Serialize)]
        struct Claims {
            sub: String,
            exp: usize,
        }

        // TODO: env var (left in for the demo day build)
        const JWT_SECRET: &str = "{V}";

        pub fn sign(sub: &str, exp: usize) -> String {
            encode(&Header::default(), &Claims { sub: sub.into(), exp }, &EncodingKey::from_secret(JWT_SECRET.as_bytes()))
                .unwrap()
        }
        """,
    ),
    _t(
        "courses/cs4550-web/project-studybuddy/client/src/firebase.ts",
        "t29_recaptcha_site",
        False,
        """
        import { initializeAppCheck, ReCaptchaV3Provider } from "firebase/app-check";
        import { app } from "./app";

        // reCAPTCHA v3 *site* key - public, shipped to every browser
        export const appCheck = initializeAppCheck(app, {
          provider: new ReCaptchaV3Provider("{V}"),
          isTokenAutoRefreshEnabled: true,
        });
        """,
    ),
    _t(
        "courses/cs4550-web/project-studybuddy/.github/workflows/ci.yml",
        "t29_ci_ref_test",
        False,
        """
        name: ci
        on: [push, pull_request]
        jobs:
          test:
            runs-on: ubuntu-latest
            services:
              mongo:
                image: mongo:7
                ports: ["27017:27017"]
            env:
              MONGO_URI: mongodb://localhost:27017/studybuddy_test
              SESSION_SECRET: {V}
            steps:
              - uses: actions/checkout@v4
              - uses: actions/setup-node@v4
                with: {node-version: 20}
              - run: npm ci && npm test
        """,
    ),
    _t(
        "courses/cs4550-web/grading/deploy_feedback.sh",
        "t29_github",
        True,
        """
        #!/bin/bash
        # TA script: push feedback branches to every team repo in the GitHub Classroom org
        ORG=hsu-cs4550-fall24
        export GH_TOKEN={V}
        for repo in $(gh repo list "$ORG" --limit 200 --json name -q '.[].name'); do
          git -C "repos/$repo" push "https://x-access-token:${GH_TOKEN}@github.com/$ORG/$repo.git" feedback
        done
        """,
    ),
    _t(
        "courses/cs4550-web/grading/gradescope/setup.sh",
        "t29_github_fine",
        True,
        """
        #!/usr/bin/env bash
        # Gradescope autograder setup - clones the private test suite
        apt-get install -y python3 python3-pip git
        pip3 install -r /autograder/source/requirements.txt
        git clone https://hsu-cs-ta:{V}@github.com/hsu-cs4550/autograder-tests.git /autograder/tests
        """,
    ),
    _t(
        "courses/cs4550-web/grading/gradescope/run_autograder",
        "t29_sh_ref",
        False,
        """
        #!/usr/bin/env bash
        cd /autograder/source
        export TEST_DB_PASSWORD={V}
        python3 run_tests.py > /autograder/results/results.json
        """,
    ),
    _t(
        "courses/cs3110-functional/ps4/lib/store.ml",
        "t29_pw",
        True,
        """
        (* PS4 extension: persist the key-value store to the course Postgres *)
        let conninfo =
          "host=cs3110-pg.cs.hsu.edu dbname=ps4 user=ocaml_team3 password={V}"

        let connect () = new Postgresql.connection ~conninfo ()

        let put conn k v =
          ignore (conn#exec ~params:[| k; v |] "INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = $2")
        """,
    ),
    _t(
        "courses/cs3110-functional/ps5/app/Main.hs",
        "t29_hs_ref",
        False,
        """
        module Main where

        import Database.PostgreSQL.Simple
        import System.Environment (getEnv, lookupEnv)

        main :: IO ()
        main = do
          pw <- {V}
          conn <- connect defaultConnectInfo
            { connectHost = "cs3110-pg.cs.hsu.edu", connectUser = "hs_team3", connectPassword = pw }
          [Only n] <- query_ conn "SELECT count(*) FROM kv" :: IO [Only Int]
          print n
        """,
    ),
    _t(
        "courses/ds2001-intro-data/lab09/spotify_lab.Rmd",
        "t29_spotify_secret",
        True,
        """
        ---
        title: "Lab 9 - APIs in R"
        author: "Hana Okafor"
        output: html_document
        ---

        ```{r setup}
        library(spotifyr)
        Sys.setenv(SPOTIFY_CLIENT_ID = "5e1b7c9a3f2d4e6b8a0c1d2e3f4a5b6c")
        Sys.setenv(SPOTIFY_CLIENT_SECRET = "{V}")
        access_token <- get_spotify_access_token()
        ```

        ```{r}
        taylor <- get_artist_audio_features("taylor swift")
        mean(taylor$danceability)
        ```
        """,
    ),
    _t(
        "courses/ds2001-intro-data/lab09/lab_instructions.md",
        "t29_r_ref_spotify",
        False,
        """
        # Lab 9 - APIs in R

        Create an app at developer.spotify.com and store the secret outside your Rmd:

        ```r
        Sys.setenv(SPOTIFY_CLIENT_SECRET = {V})
        ```

        Submissions with a secret pasted into the Rmd lose 5 points (and you must rotate it).
        """,
    ),
    _t(
        "courses/cs5300-cloud/hw2/terraform/main.tf",
        "t29_aws_pair_hcl",
        True,
        """
        provider "aws" {
          region     = "us-east-2"
          {IV}
        }

        resource "aws_s3_bucket" "site" {
          bucket = "cs5300-hw2-pnguyen"
        }

        resource "aws_s3_bucket_website_configuration" "site" {
          bucket = aws_s3_bucket.site.id
          index_document { suffix = "index.html" }
        }
        """,
    ),
    _t(
        "courses/cs5300-cloud/hw2/terraform/variables.tf",
        "t29_tf_var_default",
        False,
        """
        variable "db_password" {
          description = "Password for the RDS instance. Pass with TF_VAR_db_password; never commit it."
          type        = string
          sensitive   = true
          default     = {V}
        }

        variable "instance_class" {
          type    = string
          default = "db.t4g.micro"
        }
        """,
    ),
    _t(
        "courses/cs5300-cloud/hw3/Dockerfile",
        "t29_npm",
        True,
        """
        FROM node:20-alpine
        WORKDIR /app
        COPY package*.json ./
        # private course package (@hsu-cs5300/metrics) lives on npmjs under the course org
        RUN echo "//registry.npmjs.org/:_authToken={V}" > .npmrc && npm ci && rm .npmrc
        COPY . .
        EXPOSE 8080
        CMD ["node", "server.js"]
        """,
    ),
    _t(
        "courses/cs5300-cloud/hw3/Dockerfile.secure",
        "t29_docker_ref",
        False,
        """
        # syntax=docker/dockerfile:1.7
        FROM node:20-alpine
        WORKDIR /app
        COPY package*.json ./
        RUN --mount=type=secret,id=npmrc,target=/app/.npmrc npm ci
        ARG SENTRY_AUTH_TOKEN={V}
        COPY . .
        CMD ["node", "server.js"]
        """,
    ),
    _t(
        "courses/cs5300-cloud/hw4/k8s/secret.yaml",
        "t29_b64_pw",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: hw4-db
          namespace: student-pnguyen
        type: Opaque
        data:
          username: aHc0X2FwcA==
          password: {V}
        """,
    ),
    _t(
        "courses/cs5300-cloud/hw4/k8s/sealed-secret.yaml",
        "t29_sealed",
        False,
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: hw4-db
          namespace: student-pnguyen
        spec:
          encryptedData:
            username: {V}
            password: {V2}
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Ops, CI, infrastructure
    _t(
        "ops/alerts/lms_health_check.sh",
        "t29_slack_webhook",
        True,
        """
        #!/bin/bash
        # cron */5 on lms-util-01: alert #lms-ops when a Moodle site stops answering
        WEBHOOK="{V}"
        for site in learn.hsu.edu online.hsu.edu train.learn.hsu.edu; do
          code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "https://$site/login/index.php")
          if [ "$code" != "200" ]; then
            curl -s -X POST -H 'Content-type: application/json' \\
              --data "{\\"text\\":\\":rotating_light: $site returned $code\\"}" "$WEBHOOK"
          fi
        done
        """,
    ),
    _t(
        "ops/alerts/teams_notify.py",
        "t29_teams_webhook",
        True,
        """
        \"\"\"Post HPC maintenance notices into the 'RC Users' Teams channel.\"\"\"
        import sys

        import requests

        WEBHOOK = "{V}"

        requests.post(
            WEBHOOK,
            json={"@type": "MessageCard", "summary": "hopper maintenance", "text": sys.stdin.read()},
            timeout=20,
        ).raise_for_status()
        """,
    ),
    _t(
        "ops/alerts/README.md",
        "t29_example_cred",
        False,
        """
        # alerts

        Scripts that post into chat. Webhook URLs come from the ops vault (`kv/ops/webhooks`).

        For local testing use the documentation value from the Slack API docs:

            {V}

        It does not deliver anywhere.
        """,
    ),
    _t(
        "ops/zoom/recordings_to_canvas.py",
        "t29_zoom_secret",
        True,
        """
        \"\"\"Copy Zoom cloud recordings of HSU Online lectures into the matching Canvas course.\"\"\"
        import base64

        import requests

        ACCOUNT_ID = "hK3vQ9pLr2STmX7wZ1yAbC"
        CLIENT_ID = "u7RkPq2NsW9dLx4VbT3mJA"
        CLIENT_SECRET = "{V}"


        def zoom_token() -> str:
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            r = requests.post(
                "https://zoom.us/oauth/token",
                params={"grant_type": "account_credentials", "account_id": ACCOUNT_ID},
                headers={"Authorization": f"Basic {basic}"},
                timeout=30,
            )
            return r.json()["access_token"]
        """,
    ),
    _t(
        "ops/servicenow/create_incident.sh",
        "t29_basic_b64",
        True,
        """
        #!/bin/sh
        # called by Nagios on hard CRITICAL for LMS/SIS hosts
        curl -s -X POST "https://hsu.service-now.com/api/now/table/incident" \\
          -H "Authorization: Basic {V}" \\
          -H "Content-Type: application/json" \\
          -d "{\\"short_description\\":\\"$1 is $2\\",\\"assignment_group\\":\\"LMS Operations\\",\\"urgency\\":\\"2\\"}"
        """,
    ),
    _t(
        "ops/sentry/release.sh",
        "t29_sentry_user",
        True,
        """
        #!/bin/bash
        set -e
        export SENTRY_AUTH_TOKEN={V}
        export SENTRY_ORG=hsu-it
        VERSION=$(git rev-parse --short HEAD)
        sentry-cli releases new -p hsu-mobile-api "$VERSION"
        sentry-cli releases set-commits --auto "$VERSION"
        sentry-cli releases finalize "$VERSION"
        """,
    ),
    _t(
        "ops/vault/bootstrap-notes.txt",
        "t29_vault",
        True,
        """
        vault-rc cluster bootstrap (2024-08-19)
        ========================================
        unseal: 3 of 5 shares, holders = RC director, 2x RC sysadmins, 2x CISO office
        root token was revoked after creating the admin policy.

        periodic token for the ansible controller (policy: ansible-hpc, period 768h):
            {V}
        renew with: vault token renew  (cron on rc-ansible01)
        """,
    ),
    _t(
        "ops/ci/moodle-plugins/.gitlab-ci.yml",
        "t29_gitlab",
        True,
        """
        stages: [test, package, publish]

        variables:
          MOODLE_BRANCH: MOODLE_403_STABLE

        phpunit:
          stage: test
          image: moodlehq/moodle-php-apache:8.1
          script:
            - moodle-plugin-ci install --db-type=pgsql
            - moodle-plugin-ci phpunit

        publish:
          stage: publish
          script:
            - 'curl --header "PRIVATE-TOKEN: {V}" --upload-file local_hsusync.zip
              "https://git.hsu.edu/api/v4/projects/412/packages/generic/local_hsusync/$CI_COMMIT_TAG/local_hsusync.zip"'
          only: [tags]
        """,
    ),
    _t(
        "ops/ci/moodle-plugins/.gitlab-ci.fixed.yml",
        "t29_gitlab_ref",
        False,
        """
        publish:
          stage: publish
          script:
            - 'curl --header "JOB-TOKEN: {V}" --upload-file local_hsusync.zip
              "https://git.hsu.edu/api/v4/projects/412/packages/generic/local_hsusync/$CI_COMMIT_TAG/local_hsusync.zip"'
          only: [tags]
        """,
    ),
    _t(
        "ops/ci/sis-api/Jenkinsfile",
        "t29_pw",
        True,
        """
        pipeline {
            agent { label 'linux' }
            environment {
                ANYPOINT_USER = 'svc-mule-deploy'
                ANYPOINT_PASS = '{V}'
                MULE_KEY = '{V2}'
            }
            stages {
                stage('Build') {
                    steps { sh 'mvn -B clean package -DskipTests' }
                }
                stage('Deploy') {
                    steps {
                        sh 'mvn -B deploy -DmuleDeploy -Danypoint.username=$ANYPOINT_USER -Danypoint.password=$ANYPOINT_PASS -Dmule.key=$MULE_KEY'
                    }
                }
            }
        }
        """,
    ),
    _t(
        "ops/helm/canvas/values-prod.enc.yaml",
        "t29_sops",
        False,
        """
        postgresql:
            password: {V}
        redis:
            password: {V2}
        sops:
            kms:
                - arn: arn:aws:kms:us-east-2:418273645091:key/6e1c2a94-7d3b-4f85-a0e2-9b8c7d6e5f41
                  created_at: "2024-10-09T14:02:11Z"
            lastmodified: "2024-10-09T14:02:13Z"
            version: 3.8.1
        """,
    ),
    _t(
        "ops/terraform/moodle/terraform.tfstate.excerpt.json",
        "t29_tfstate_neg",
        False,
        """
        {
          "version": 4,
          "resources": [
            {
              "type": "aws_db_instance",
              "name": "moodle_online",
              "instances": [
                {
                  "attributes": {
                    "identifier": "moodle-online-prod",
                    "password": {V},
                    "manage_master_user_password": true,
                    "kms_key_id": "arn:aws:kms:us-east-2:418273645091:key/6e1c2a94-7d3b-4f85-a0e2-9b8c7d6e5f41",
                    "resource_id": "db-7QXK2M4RZB5TNW3LPD6HJ8VYCA"
                  },
                  "sensitive_attributes": [[{"type": "get_attr", "value": "password"}]]
                }
              ]
            }
          ]
        }
        """,
    ),
    _t(
        "ops/pypi/.pypirc",
        "t29_pypi",
        True,
        """
        [distutils]
        index-servers =
            pypi
            hsu

        [pypi]
        username = __token__
        password = {V}

        [hsu]
        repository = https://nexus.hsu.edu/repository/pypi-internal/
        username = rc-publish
        """,
    ),
    _t(
        "ops/shibboleth/idp/conf/ldap.properties",
        "t29_ldap_pw",
        True,
        """
        idp.authn.LDAP.authenticator = bindSearchAuthenticator
        idp.authn.LDAP.ldapURL = ldaps://ad-dc01.hsu.edu:636 ldaps://ad-dc02.hsu.edu:636
        idp.authn.LDAP.useStartTLS = false
        idp.authn.LDAP.baseDN = OU=People,DC=hsu,DC=edu
        idp.authn.LDAP.userFilter = (sAMAccountName={user})
        idp.authn.LDAP.bindDN = CN=svc-shib-idp,OU=Service Accounts,DC=hsu,DC=edu
        idp.authn.LDAP.bindDNCredential = {V}
        idp.attribute.resolver.LDAP.bindDNCredential = %{idp.authn.LDAP.bindDNCredential:undefined}
        """,
    ),
    _t(
        "ops/shibboleth/idp/credentials/secrets.properties",
        "t29_shib_ref",
        False,
        """
        # Secrets are injected by the container entrypoint from /run/secrets (see idp-docker README)
        idp.sealer.storePassword = {V}
        idp.sealer.keyPassword = {V2}
        idp.authn.LDAP.bindDNCredential = {V3}
        """,
    ),
    _t(
        "ops/shibboleth/idp/credentials/idp-signing.crt",
        "t29_cert",
        False,
        """
        {V}
        """,
    ),
    _t(
        "ops/shibboleth/idp/credentials/idp-signing.key",
        "t29_pkcs8_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "ops/tomcat/cas/conf/context.xml",
        "t29_pw",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <Context>
          <WatchedResource>WEB-INF/web.xml</WatchedResource>
          <Resource name="jdbc/casAudit" auth="Container" type="javax.sql.DataSource"
                    driverClassName="org.postgresql.Driver"
                    url="jdbc:postgresql://pg-apps.hsu.edu:5432/cas_audit"
                    username="cas_audit" password="{V}"
                    maxTotal="20" maxIdle="5"/>
        </Context>
        """,
    ),
    _t(
        "ops/nginx/rc-status/.htpasswd",
        "t29_apr1",
        False,
        """
        rcstaff:{V}
        grafana-viewer:{V2}
        """,
    ),
    _t(
        "ops/legacy/sis_nightly.pl",
        "t29_pw",
        True,
        """
        #!/usr/bin/perl
        # sis_nightly.pl - legacy registrar extract (still used by Athletics compliance)
        use strict;
        use warnings;
        use DBI;

        my $dbh = DBI->connect('dbi:Oracle:host=sisdb-scan.hsu.edu;service_name=SISPROD;port=1521',
            'ATHL_EXTRACT', '{V}', { RaiseError => 1, AutoCommit => 0 });
        my $sth = $dbh->prepare(q{SELECT spriden_id, sgbstdn_levl_code FROM athl_roster_v});
        $sth->execute;
        while (my @row = $sth->fetchrow_array) { print join(',', @row), "\\n"; }
        $dbh->disconnect;
        """,
    ),
    _t(
        "ops/analytics/spark/EnrollmentJob.scala",
        "t29_scala_ref",
        False,
        """
        package edu.hsu.analytics

        import org.apache.spark.sql.SparkSession

        object EnrollmentJob {
          def main(args: Array[String]): Unit = {
            val spark = SparkSession.builder.appName("enrollment-trends").getOrCreate()
            val df = spark.read.format("jdbc")
              .option("url", "jdbc:oracle:thin:@//sisdb-scan.hsu.edu:1521/SISRPT")
              .option("user", "SIS_RO")
              .option("password", {V})
              .option("dbtable", "enrl_term_summary_v")
              .load()
            df.write.mode("overwrite").parquet("s3a://hsu-ir-lake/enrollment/")
          }
        }
        """,
    ),
]
TEMPLATES += [
    # ================================================================ Runbooks, chat exports, tickets, logs, HTML docs
    _t(
        "docs/runbooks/door-access-controller-recovery.md",
        "t29_pw",
        True,
        """
        # Runbook: residence hall door controller lost contact with OnGuard

        **Symptoms:** doors in one hall stay on their offline card cache; the OnGuard alarm monitor
        shows `Communication lost` for the Mercury panel.

        1. VPN in and browse to the panel's web config (`https://10.72.<hall>.5`).
        2. Log in as `admin`; the password is {V} (same on all Mercury LP1502 panels since the
           2022 refresh - Facilities has a project to change them).
        3. Under *Host Comm*, check the primary host is `onguard-comm.facilities.hsu.edu:3001`.
        4. Reboot the panel; doors fail secure during the 90 s restart - call the hall desk first.

        If the panel does not come back, page Facilities Security (x4-2200).
        """,
    ),
    _t(
        "docs/chat-exports/ta-cs2110-fall24/2024-10-14.json",
        "t29_canvas_token",
        True,
        """
        [
          {
            "type": "message",
            "user": "U05QK2M7TJA",
            "text": "the upload script keeps 401ing for me, can someone check my token?",
            "ts": "1728921314.501219"
          },
          {
            "type": "message",
            "user": "U05QK2M7TJA",
            "text": "it's {V}",
            "ts": "1728921339.501449"
          },
          {
            "type": "message",
            "user": "U04R8LDWN3P",
            "text": "you need to regenerate it, it expired on the 1st. also delete that message :sweat_smile:",
            "ts": "1728921402.502001"
          }
        ]
        """,
    ),
    _t(
        "docs/chat-exports/rc-sysadmins/2024-09-03.txt",
        "t29_git_sha",
        False,
        """
        [09:12] jkim: rolled the slurm role to hopper, commit {V}
        [09:13] ashah: slurmdbd came back fine? the StoragePass change went through vault this time
        [09:14] jkim: yep, pulled from kv/hpc/slurmdbd, nothing in the repo
        [09:20] ashah: cool. reverting the munge change from {V2} though, login2 lost auth
        [09:31] jkim: ack
        """,
    ),
    _t(
        "docs/tickets/RITM0051877.txt",
        "t29_vendor_pw",
        True,
        """
        Number: RITM0051877
        Requested for: Dr. Lena Ibarra (Neuroscience)
        Short description: Move the two-photon rig PC onto the research VLAN
        Work notes:
          2024-10-02 09:41 - cjohnson: Vendor (Bruker) confirms PrairieView PC local account is
          "prairie" / password {V}. Needed to join it to the RESEARCH domain, leaving the local
          account enabled for their remote support.
          2024-10-02 11:05 - cjohnson: Joined, moved to VLAN 640, Windows updates deferred per lab.
        State: Closed Complete
        """,
    ),
    _t(
        "docs/tickets/INC0190342.txt",
        "t29_argon2",
        False,
        """
        Number: INC0190342
        Short description: Students cannot log in to the training Moodle after Keycloak migration
        Work notes:
          Compared a migrated user against the old table - hashes were imported with the wrong
          algorithm id. Old (mdl_user.password) vs Keycloak credential row:
            moodle:   $2y$10$ (bcrypt)
            keycloak: {V}
          Re-ran the import with --hash-algorithm=bcrypt; logins work. No passwords were exposed,
          these are one-way hashes.
        """,
    ),
    _t(
        "logs/lms-util-01/nginx/access.log",
        "t29_moodle_token",
        True,
        """
        10.20.4.17 - - [14/Oct/2024:02:10:03 -0400] "GET /webservice/rest/server.php?wstoken={V}&wsfunction=core_course_get_courses&moodlewsrestformat=json HTTP/1.1" 200 48211 "-" "python-requests/2.31.0"
        10.20.4.17 - - [14/Oct/2024:02:10:07 -0400] "GET /webservice/rest/server.php?wstoken={V}&wsfunction=core_enrol_get_enrolled_users&courseid=4112&moodlewsrestformat=json HTTP/1.1" 200 9313 "-" "python-requests/2.31.0"
        10.20.4.22 - - [14/Oct/2024:02:11:41 -0400] "GET /login/index.php HTTP/1.1" 200 5120 "-" "Mozilla/5.0"
        """,
    ),
    _t(
        "logs/lms-util-01/gradesync/gradesync.log",
        "t29_redacted",
        False,
        """
        2024-10-14 02:10:03,114 INFO  gradesync: POST https://learn.hsu.edu/webservice/rest/server.php wstoken={V} wsfunction=gradereport_user_get_grade_items courseid=4112
        2024-10-14 02:10:07,552 INFO  gradesync: canvas PUT /api/v1/courses/48213/assignments/902114/submissions/update_grades Authorization=Bearer {V2}
        2024-10-14 02:10:09,003 WARN  gradesync: 3 students missing SIS ids, skipped
        """,
    ),
    _t(
        "docs/wiki/wifi/iot-devices.html",
        "t29_shared_secret",
        True,
        """
        <!DOCTYPE html>
        <html>
        <head><title>Connecting building IoT devices - IT Wiki</title></head>
        <body>
        <h1>Connecting building IoT devices</h1>
        <p>Devices that cannot do 802.1X (thermostats, AV controllers, scoreboards) join the
        <code>HSU-IoT</code> SSID with a per-building pre-shared key.</p>
        <table>
          <tr><th>Building</th><th>PSK</th></tr>
          <tr><td>Ellison Hall</td><td><code>{V}</code></td></tr>
          <tr><td>Marsh Hall</td><td><code>{V2}</code></td></tr>
        </table>
        <p>Register the device MAC in NetReg before connecting.</p>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/wiki/lms/embed-widget.html",
        "t29_sri",
        False,
        """
        <!DOCTYPE html>
        <html>
        <head>
          <title>Embedding the course-evaluation widget in Moodle</title>
          <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/css/bootstrap.min.css"
                integrity="{V}" crossorigin="anonymous">
          <script src="https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/js/bootstrap.bundle.min.js"
                  integrity="{V2}" crossorigin="anonymous"></script>
        </head>
        <body>
          <p>Add an HTML block to the course page and paste the snippet from the evaluation portal.</p>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/wiki/lms/saved-login-page.html",
        "t29_csrf",
        False,
        """
        <!-- saved from https://learn.hsu.edu/login/index.php for the accessibility review -->
        <form class="login-form" action="https://learn.hsu.edu/login/index.php" method="post" id="login">
          <input type="hidden" name="logintoken" value="{V}">
          <label for="username">NetID</label>
          <input type="text" name="username" id="username" value="" autocomplete="username">
          <label for="password">Password</label>
          <input type="password" name="password" id="password" value="" autocomplete="current-password">
          <button type="submit" id="loginbtn">Log in</button>
        </form>
        <a href="https://learn.hsu.edu/login/logout.php?sesskey={V2}">Log out</a>
        """,
    ),
]
