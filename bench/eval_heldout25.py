"""Blind part ``heldout25``: a regional water and power utility, Valdemere Water & Power (VWP:
drinking water, wastewater and a medium-voltage grid), with its contractors and vendors. Files are
the customer portal and billing (a Laravel portal, a legacy Rails app, a .NET self-service API, a
Spring Boot Adyen gateway, a Django back-office fixture, an SAP IS-U RFC config, Oracle CIS
migrations and sqlplus/sftp bill-print batches, Stripe, Twilio and SendGrid clients, an assistant
using OpenAI, i18n bundles in Dutch, Portuguese and English, Compose, Kubernetes and Helm), the
smart-meter head-end and meter data management (HES adapter config and ``.http`` files, DLMS/COSEM
key exports and optical-probe settings, LoRaWAN ChirpStack config, device and gateway keys,
Mosquitto bridges and password files, Kafka clients, MDM ETL in Python, connection-register
exports), SCADA/OT (Ignition Jython scripts and tag lists, OSIsoft PI PowerShell, Telegraf/InfluxDB,
OPC UA node maps and client PKI, DNP3 secure-authentication RTU settings, SEL relay access levels,
HMI VNC inventories and kiosk cloud-init, AVEVA galaxy deploy batch files, Cisco industrial switch
configs, SNMP exporter, FortiGate VPNs, Guacamole jump hosts, Node-RED credentials), outage
management (IVR callback in TypeScript, a Go weather client, Ruby SMS blasts, Teams alerts, a public
status API doc, Jasypt-protected Spring config), GIS (ArcGIS Python API, web maps, GeoServer data
stores, Mapbox upload scripts and map code, GeoJSON samples), field-crew mobile apps (Android
keystore/local properties, Gradle Kotlin DSL, Kotlin sync client, FCM push, iOS fastlane with an
App Store Connect ``.p8`` key, React Native env and tests, Intune enrolment in PowerShell, tablet
manuals in Dutch and Portuguese), call-centre telephony (Asterisk PJSIP, Genesys Cloud, recording
sync to S3, CDR samples, a wallboard README), IT infrastructure (Ansible vars and vault files, Active
Directory PowerShell, LDIF, RADIUS, hostapd, iDRAC racadm, restic, Alertmanager with Slack and
PagerDuty, Datadog, Grafana, New Relic Terraform, PKI files, SSH keys), CI/CD (GitLab CI, GitHub
Actions, Jenkinsfile and Jenkins credentials.xml, Azure Pipelines, Argo CD repository secrets, npm,
PyPI and Docker registry credentials, Renovate, SonarQube, Dockerfiles, lockfiles), cloud
(Terraform for Azure, AWS and GCP, AWS credentials and IAM policies, Azure Functions settings and
Service Bus, Vault agent bootstrap, SOPS files), and runbooks in English, Dutch and Brazilian
Portuguese, Slack/Teams/Mattermost chat exports, Jira and ServiceNow tickets, small tools and
Jupyter notebooks. Written blind (without seeing the scanner, its rules or other parts' templates).

Credentials are passwords (strong, weak, company and season patterns, vendor and factory defaults
such as SEL relay levels, DLMS low-level-security and iDRAC logins, user equal to password),
database and broker URIs, ADO.NET and Azure Storage/Service Bus connection strings, Basic-auth
strings, API keys and tokens in vendor formats (GitHub classic with CRC and fine-grained, GitLab, npm
with CRC, PyPI, Docker Hub, Slack bot tokens, Slack and Teams webhooks, Stripe secret, restricted and
webhook keys, Adyen, Twilio, SendGrid, Datadog, PagerDuty, New Relic, Grafana with CRC, Sentry,
Atlassian, SonarQube, Azure DevOps, Okta, Vault, OpenAI, Google Maps, FCM, Mapbox secret tokens,
ArcGIS, FME, InfluxDB, generic HES keys and OAuth client secrets), cloud keys (AWS, Azure AD client
secrets, GCP service-account keys), private keys (PKCS#1, PKCS#8, SEC1, OpenSSH, Apple ``.p8``),
AES keys of the domain (DLMS/COSEM GUEK/GAK and master keys, LoRaWAN AppKeys, DNP3 update keys),
SNMP communities and v3 passphrases, RADIUS secrets, IPsec and Wi-Fi pre-shared keys, restic
passphrases, JWT signing secrets, Rails secret_key_base, JWTs and session cookies.

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt and
argon2 in a seeder, PBKDF2 in a Django fixture, sha512-crypt in cloud-init, SSHA in LDIF, Mosquitto
``$7$``, Cisco type 5/8/9, SHA-256 in Guacamole), values encrypted at rest (Ansible Vault, SOPS,
sealed secrets, Jasypt, Jenkins, Rails credentials), references to environment variables and secret
stores in each language and tool (Python, JS/TS, C#, PowerShell, Gradle, Helm, Terraform, GitHub
Actions, GitLab CI, Key Vault, Vault, Secrets Manager, 1Password, CyberArk), placeholders and
redactions in English, Dutch and Portuguese, masked and DLP-redacted values, public material
(certificates, public and SSH keys, Mapbox ``pk.`` tokens, Stripe publishable keys, Google and Okta
client ids, Datadog RUM client tokens, base64 of user and host names), identifiers of the domain
shaped like secrets (EAN connection codes, ICCIDs, IMEIs, DLMS system titles, LoRaWAN EUIs, key
check values, OPC UA node ids including ByteString ones, SCADA tag paths, ArcGIS item ids and
GlobalIDs, ServiceNow sys_ids, Twilio SIDs, Azure tenant/subscription ids, ARNs, Apple team ids,
Grafana uids, Asterisk call ids), digests and lockfile checksums, password-policy settings, UI text
about passwords, documented example credentials (AWS ``EXAMPLE`` keys, Azurite's account key,
jwt.io's token, Stripe's documented test key, Slack's sample webhook) and credentials on
documentation hosts, and test values that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import textwrap
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
PW_SYMBOLS = "!#%^*-_=+.@~"
CRYPT64 = "./" + ALNUM


class Heldout25Values(evalset.Values):
    """Value generators of the heldout25 part; every name starts with ``h25_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "reservoir",
            "turbine",
            "aquifer",
            "hydrant",
            "feeder",
            "spillway",
            "substation",
            "culvert",
            "kilowatt",
            "pumphouse",
            "sluice",
            "penstock",
            "estuary",
            "switchgear",
        ]
        self.users = [
            "cis_app",
            "mdm_etl",
            "hes_api",
            "pi_reader",
            "oms_svc",
            "gis_pub",
            "ivr",
            "crewsync",
            "scada_ro",
            "billing_batch",
        ]
        self._h25_aws_turn = 0
        self._h25_awsdoc_turn = 0
        self._h25_turns: dict[str, int] = {}
        self._h25_decks: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ helpers (not slots)
    def h25_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h25_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h25_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h25_util_luhn(self, digits: str) -> str:
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return digits + str((10 - total % 10) % 10)

    def h25_util_gs1(self, digits: str) -> str:
        total = sum(int(ch) * (3 if i % 2 == 0 else 1) for i, ch in enumerate(reversed(digits)))
        return digits + str((10 - total % 10) % 10)

    def h25_util_jwt_part(self, obj: dict[str, object]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def h25_util_url_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def h25_util_turn(self, name: str, n: int) -> int:
        """0, 1, ..., n-1, 0, ... per generator: for the few kinds whose one template has slots
        of different shapes in a fixed order."""
        turn = self._h25_turns.get(name, -1) + 1
        self._h25_turns[name] = turn % n
        return turn % n

    def h25_util_deck(self, name: str, items: list[str]) -> str:
        """Deal from a shuffled deck per generator, so the slots of one file rarely repeat."""
        deck = self._h25_decks.get(name)
        if not deck:
            deck = list(items)
            self.rng.shuffle(deck)
            self._h25_decks[name] = deck
        return deck.pop()

    # ------------------------------------------------------------------ positives: passwords
    def h25_pw(self) -> str:
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
            return f"{word.capitalize()}.{other.capitalize()}.{self.s(2, DIGITS)}"
        if shape == 3:
            return "Vwp" + self.s(11, ALNUM) + self.pick(list("!#%~"))
        if shape == 4:
            return self.s(18, ALNUM)
        if shape == 5:
            leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
            return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)
        return "-".join(self.pick(self.words) for _ in range(3)) + "-" + self.s(2, DIGITS)

    def h25_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Welkom01!",
                    "Senha@123",
                    "P@ssw0rd1",
                    "Water123!",
                    "Scada2023",
                    "admin123",
                    "letmein1",
                    "Qwerty123!",
                    "Valdemere1",
                ]
            )
        if shape == 1:
            return "Valdemere" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return self.pick(["Summer", "Winter", "Zomer", "Herfst", "Verao", "Inverno"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h25_vendor_pw(self) -> str:
        return self.h25_util_deck(
            "vendor",
            [
                "admin",
                "1234",
                "100",
                "password",
                "12345678",
                "admin1234",
                "default",
                "operator",
                "Wonderware1",
                "manager",
            ],
        )

    def h25_sel_pw(self) -> str:
        return self.h25_util_deck("sel", ["OTTER", "TAIL", "EDITH", "CLARKE"])

    def h25_lls_pw(self) -> str:
        return self.h25_util_deck("lls", ["00000000", "12345678", "ABCDEFGH", "11111111"])

    def h25_idrac_pw(self) -> str:
        return self.pick(["calvin", "calvin", "Calvin1!"])

    def h25_user_same(self) -> str:
        return self.pick(
            [
                "scada",
                "operator",
                "pi_reader",
                "hmi",
                "engineer",
                "hesadmin",
                "mdm",
                "gisadmin",
                "ivr",
                "tester",
                "vwpadmin",
                "historian",
            ]
        )

    def h25_passphrase(self) -> str:
        words = [self.pick(self.words) for _ in range(4)]
        return " ".join(words) if self.rng.randrange(2) else "-".join(words) + self.s(2, DIGITS)

    def h25_sip_secret(self) -> str:
        if self.rng.randrange(2):
            return self.s(16, ALNUM)
        return self.s(1, string.ascii_letters) + self.s(13, ALNUM + "#*+")

    def h25_snmp(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "vwp" + self.s(10, ALNUM) + self.pick(["ro", "rw", "RO"])
        if shape == 1:
            return self.pick(self.words).capitalize() + "-" + self.s(8, ALNUM)
        return self.s(20, ALNUM + "-_")

    def h25_psk(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return self.s(64, HEX)
        return "-".join(self.pick(self.words) for _ in range(3)) + self.s(3, DIGITS)

    def h25_wifi_psk(self) -> str:
        if self.rng.randrange(2):
            return self.s(20, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + self.s(3, DIGITS)

    def h25_net_key(self) -> str:
        return self.s(1, string.ascii_letters) + self.s(
            self.rng.randrange(15, 25), ALNUM + "!%^*-_+="
        )

    def h25_k8s_b64(self) -> str:
        return base64.b64encode(self.h25_pw().encode()).decode()

    def h25_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-deploy", "pi-webapi", "hes-client"])
        return base64.b64encode(f"{user}:{self.h25_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: URIs, strings
    def h25_db_url(self) -> str:
        user = self.pick(self.users)
        pw = self.h25_util_url_pw()
        shape = self.rng.randrange(5)
        if shape == 0:
            return f"postgresql://{user}:{pw}@pg-cis-prd01.vwp.lan:5432/cis"
        if shape == 1:
            return (
                f"postgresql+psycopg2://{user}:{pw}@pgbouncer.portal.svc.cluster.local:6432/portal"
            )
        if shape == 2:
            return f"mssql+pyodbc://{user}:{pw}@sql-mdm-02.vwp.lan:1433/MDM?driver=ODBC+Driver+18+for+SQL+Server"
        if shape == 3:
            return f"oracle+oracledb://{user}:{pw}@ora-cis-rac.vwp.lan:1521/?service_name=CISPRD"
        return f"mysql://{user}:{pw}@10.40.12.31:3306/oms_archive"

    def h25_broker_url(self) -> str:
        user = self.pick(["hes", "mdm", "oms", "telemetry", "crewsync"])
        pw = self.h25_util_url_pw()
        shape = self.rng.randrange(4)
        if shape == 0:
            return f"amqps://{user}:{pw}@rabbit.vwp.lan:5671/meter-events"
        if shape == 1:
            return f"amqp://{user}:{pw}@rabbit-oms.vwp.lan:5672/oms"
        if shape == 2:
            return f"redis://:{pw}@redis-portal.vwp.lan:6379/2"
        return f"mongodb://{user}:{pw}@oms-mongo01.vwp.lan:27017/oms?authSource=admin"

    def h25_adonet(self) -> str:
        """The CIS connection, then the historian one (the one template of this kind)."""
        user = self.pick(self.users)
        pw = self.h25_pw().replace(";", "")
        if self.h25_util_turn("adonet", 2) == 0:
            return (
                f"Server=tcp:sql-cis-prd.vwp.lan,1433;Database=CisSelfService;User ID={user};"
                f"Password={pw};Encrypt=True;TrustServerCertificate=False;"
            )
        return f"Data Source=hist-sql01.ot.vwp.lan,1433;Initial Catalog=Runtime;User Id={user};Password={pw};"

    def h25_azure_storage(self) -> str:
        account = self.pick(["stvwpmeterprd", "stvwpbillprint", "stvwpgisraster"])
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self.h25_util_b64(64)};EndpointSuffix=core.windows.net"
        )

    def h25_azure_sb(self) -> str:
        if self.rng.randrange(2):
            return (
                "Endpoint=sb://sb-vwp-integration.servicebus.windows.net/;"
                f"SharedAccessKeyName=send-oms;SharedAccessKey={self.h25_util_b64(32)}"
            )
        return (
            "Endpoint=sb://sb-vwp-integration.servicebus.windows.net/;"
            f"SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={self.h25_util_b64(32)}"
        )

    def h25_session_cookie(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            sig = self.h25_util_b64(32, pad=False).replace("+", "-").replace("/", "_")
            return f"connect.sid=s%3A{self.s(32, URLSAFE)}.{sig}"
        if shape == 1:
            return ".AspNetCore.Cookies=CfDJ8" + self.s(180, URLSAFE)
        return f"JSESSIONID={self.s(32, HEXU)}; XSRF-TOKEN={self.uuid_key()}"

    # ------------------------------------------------------------------ positives: tokens
    def h25_api_key(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return self.s(40, HEX)
        if shape == 2:
            return "hes_live_" + self.s(40, URLSAFE)
        return self.s(48, URLSAFE)

    def h25_client_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(43, URLSAFE)
        if shape == 1:
            return self.s(32, ALNUM)
        return self.s(40, URLSAFE)

    def h25_jwt_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(64, HEX)
        if shape == 1:
            return self.h25_util_b64(48)
        return self.s(40, ALNUM + "!#%^*-_")

    def h25_app_secret(self) -> str:
        if self.rng.randrange(2):
            return self.s(128, HEX)
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h25_jwt(self) -> str:
        header = self.h25_util_jwt_part({"alg": "HS256", "typ": "JWT"})
        now = 1712000000 + self.rng.randrange(10**7)
        payload = self.h25_util_jwt_part(
            {
                "iss": "https://sso.vwp.lan/realms/field",
                "sub": self.uuid_key(),
                "aud": self.pick(["oms-api", "hes-gateway", "portal-bff"]),
                "scope": self.pick(["outage:write", "meter:read", "crew:dispatch"]),
                "iat": now,
                "exp": now + 3600,
            }
        )
        return f"{header}.{payload}.{self.h25_util_b64(32, urlsafe=True, pad=False)}"

    def h25_aes_hex(self) -> str:
        if self.rng.randrange(3):
            return self.s(32, HEXU)
        return self.s(64, HEX)

    def h25_github(self) -> str:
        return self.h25_util_crc_token(self.pick(["ghp", "ghp", "ghs", "gho"]))

    def h25_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h25_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h25_npm(self) -> str:
        return self.h25_util_crc_token("npm")

    def h25_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(self.rng.randrange(70, 140), URLSAFE)

    def h25_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h25_slack_bot(self) -> str:
        return (
            f"{self.pick(['xoxb', 'xoxb', 'xoxp'])}-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-"
            f"{self.s(24, ALNUM)}"
        )

    def h25_webhook_slack(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h25_webhook_teams(self) -> str:
        return (
            f"https://vwputility.webhook.office.com/webhookb2/{self.uuid_key()}@{self.uuid_key()}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{self.uuid_key()}"
        )

    def h25_aws_key(self) -> str:
        """An access key id, then its secret, alternately: every template of this kind has its
        slots in id/secret pairs, in that order."""
        self._h25_aws_turn ^= 1
        if self._h25_aws_turn:
            return "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    def h25_azure_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "-_.~")

    def h25_azdo_pat(self) -> str:
        return self.s(52, "abcdefghijklmnopqrstuvwxyz234567")

    def h25_gcp_sa(self) -> str:
        der = bytes.fromhex("308204bd020100300d06092a864886f70d0101010500048204a7")
        der += self.rng.randbytes(1217 - len(der))
        return self.h25_util_armor("PRIVATE KEY", der).replace("\n", "\\n") + "\\n"

    def h25_stripe(self) -> str:
        if self.rng.randrange(2):
            return "sk_live_51" + self.s(97, ALNUM)
        return self.pick(["sk_live_", "rk_live_"]) + self.s(24, ALNUM)

    def h25_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def h25_adyen(self) -> str:
        return (
            "AQE"
            + self.s(5, ALNUM)
            + self.h25_util_b64(60)
            + "-"
            + self.h25_util_b64(32)
            + "-"
            + self.s(16, ALNUM)
        )

    def h25_twilio(self) -> str:
        return self.s(32, HEX)

    def h25_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h25_datadog(self) -> str:
        return self.s(self.rng.choice([32, 40]), HEX)

    def h25_pd_key(self) -> str:
        return self.s(32, HEX)

    def h25_newrelic(self) -> str:
        return "NRAK-" + self.s(27, UPNUM)

    def h25_grafana(self) -> str:
        body = "glsa_" + self.s(32, ALNUM)
        return f"{body}_{zlib.crc32(body.encode()):08x}"

    def h25_sentry(self) -> str:
        return "sntryu_" + self.s(64, HEX)

    def h25_atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(170, URLSAFE) + "=" + self.s(8, HEXU)

    def h25_sonar(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def h25_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def h25_vault(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def h25_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h25_google_api(self) -> str:
        return "AIzaSy" + self.s(33, URLSAFE)

    def h25_fcm_key(self) -> str:
        return "AAAA" + self.s(7, URLSAFE) + ":APA91b" + self.s(134, URLSAFE)

    def h25_mapbox_sk(self) -> str:
        payload = self.h25_util_jwt_part({"u": "vwp-gis", "a": self.s(25, LOWNUM)})
        return f"sk.{payload}.{self.s(22, URLSAFE)}"

    def h25_arcgis(self) -> str:
        return "AAPK" + self.s(32, HEX) + self.s(86, URLSAFE)

    def h25_fme_token(self) -> str:
        return self.s(40, HEX)

    def h25_influx(self) -> str:
        return self.h25_util_b64(64, urlsafe=True)

    # ------------------------------------------------------------------ positives: private keys
    def h25_rsa_key(self) -> str:
        der = bytes.fromhex("308204a40201000282010100") + self.rng.randbytes(1192 - 12)
        return self.h25_util_armor("RSA PRIVATE KEY", der)

    def h25_pkcs8_key(self) -> str:
        der = bytes.fromhex("308204bd020100300d06092a864886f70d0101010500048204a7")
        der += self.rng.randbytes(1217 - len(der))
        return self.h25_util_armor("PRIVATE KEY", der)

    def h25_ec_key(self) -> str:
        der = (
            bytes.fromhex("30770201010420")
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a14403420004")
            + self.rng.randbytes(64)
        )
        return self.h25_util_armor("EC PRIVATE KEY", der)

    def h25_p8(self) -> str:
        der = (
            bytes.fromhex(
                "308193020100301306072a8648ce3d020106082a8648ce3d030107047930770201010420"
            )
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a14403420004")
            + self.rng.randbytes(64)
        )
        return self.h25_util_armor("PRIVATE KEY", der)

    def h25_openssh(self) -> str:
        def sstr(b: bytes) -> bytes:
            return len(b).to_bytes(4, "big") + b

        pk = self.rng.randbytes(32)
        sk = self.rng.randbytes(32)
        pub = sstr(b"ssh-ed25519") + sstr(pk)
        check = self.rng.randbytes(4)
        comment = self.pick(["deploy@vwp-ci", "ansible@jump01", "crewsync@build"]).encode()
        priv = check + check + sstr(b"ssh-ed25519") + sstr(pk) + sstr(sk + pk) + sstr(comment)
        pad = 1
        while len(priv) % 8:
            priv += bytes([pad])
            pad += 1
        blob = b"openssh-key-v1\x00" + sstr(b"none") + sstr(b"none") + sstr(b"")
        blob += (1).to_bytes(4, "big") + sstr(pub) + sstr(priv)
        return self.h25_util_armor("OPENSSH PRIVATE KEY", blob, width=70)

    # ------------------------------------------------------------------ negatives: hashes
    def h25_hash(self) -> str:
        if self.rng.randrange(2):
            return self.pick(["$2y$10$", "$2y$12$"]) + self.s(53, CRYPT64)
        salt = self.h25_util_b64(16, pad=False)
        return f"$argon2id$v=19$m=65536,t=4,p=1${salt}${self.h25_util_b64(32, pad=False)}"

    def h25_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$600000${self.s(22, ALNUM)}${self.h25_util_b64(32)}"

    def h25_sha512crypt(self) -> str:
        return f"$6$rounds=656000${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def h25_net_hash(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"5 $1${self.s(4, CRYPT64)}${self.s(22, CRYPT64)}"
        if shape == 1:
            return f"8 $8${self.s(14, CRYPT64)}${self.s(43, CRYPT64)}"
        return f"9 $9${self.s(14, CRYPT64)}${self.s(43, CRYPT64)}"

    def h25_mosq_hash(self) -> str:
        return f"$7$101${self.h25_util_b64(12)}${self.h25_util_b64(64)}"

    def h25_ssha_ldif(self) -> str:
        inner = "{SSHA}" + self.h25_util_b64(28)
        return base64.b64encode(inner.encode()).decode()

    def h25_sha256_hex(self) -> str:
        return hashlib.sha256(self.rng.randbytes(16)).hexdigest()

    # ------------------------------------------------------------------ negatives: encrypted
    def h25_ansible_vault(self) -> str:
        body = self.s(80 * self.rng.randrange(5, 9), HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h25_sops(self) -> str:
        data = self.h25_util_b64(self.rng.randrange(12, 40))
        iv = self.h25_util_b64(32)
        tag = self.h25_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h25_sealed(self) -> str:
        return "AgB" + self.h25_util_b64(self.rng.randrange(280, 360), pad=False)

    def h25_at_rest(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return f"ENC({self.h25_util_b64(self.rng.randrange(24, 48))})"
        if shape == 1:
            return "AQICAHh" + self.h25_util_b64(150)
        if shape == 2:
            return self.h25_sops()
        return "crypt2:" + self.h25_util_b64(self.rng.randrange(24, 40))

    def h25_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.h25_util_b64(self.rng.randrange(40, 64)) + "}"

    def h25_rails_enc(self) -> str:
        return f"{self.h25_util_b64(self.rng.randrange(300, 600))}--{self.h25_util_b64(12)}--{self.h25_util_b64(16)}"

    # ------------------------------------------------------------------ negatives: references
    def h25_ref_env(self) -> str:
        name = self.h25_util_deck(
            "ref_env_name",
            [
                "DB_PASSWORD",
                "HES_API_KEY",
                "PI_PASSWORD",
                "OMS_DB_PASS",
                "INFLUX_TOKEN",
                "SMTP_PASSWORD",
            ],
        )
        return self.pick(
            [
                f"${{{name}}}",
                f"${name}",
                f"${{{name}:?must be set}}",
                f"${{{name}:-}}",
                f"$({name})",
            ]
        )

    def h25_ref_py(self) -> str:
        name = self.h25_util_deck(
            "ref_py_name",
            ["MDM_DB_PASSWORD", "HES_API_KEY", "PI_WEBAPI_PASSWORD", "ARCGIS_API_KEY"],
        )
        return self.pick(
            [
                f"os.environ['{name}']",
                f"os.getenv('{name}')",
                f"keyring.get_password('vwp', '{name.lower()}')",
                f"settings.{name}",
                f"dbutils.secrets.get(scope='vwp', key='{name.lower()}')",
                f"config('{name}')",
            ]
        )

    def h25_ref_js(self) -> str:
        name = self.h25_util_deck(
            "ref_js_name", ["OMS_API_TOKEN", "SENTRY_AUTH_TOKEN", "MAPS_KEY", "CREW_API_SECRET"]
        )
        return self.pick(
            [
                f"process.env.{name}",
                f"process.env['{name}'] ?? ''",
                f"Config.{name}",
                f"import.meta.env.VITE_{name}",
                f"await getSecret('{name.lower()}')",
            ]
        )

    def h25_ref_cs(self) -> str:
        name = self.h25_util_deck(
            "ref_cs_name", ["CisDb", "HesApiKey", "ServiceBus", "Smtp:Password"]
        )
        return self.pick(
            [
                f'builder.Configuration["{name}"]',
                f'Environment.GetEnvironmentVariable("{name.upper().replace(":", "_")}")',
                f'(await secretClient.GetSecretAsync("{name.lower().replace(":", "-")}")).Value.Value',
                f'configuration.GetConnectionString("{name}")',
            ]
        )

    def h25_ref_ps(self) -> str:
        name = self.h25_util_deck(
            "ref_ps_name", ["PI_PASSWORD", "AD_JOIN_PW", "VEEAM_PW", "INTUNE_SECRET"]
        )
        return self.pick(
            [
                f"$env:{name}",
                f"(Get-Secret -Name '{name}' -AsPlainText)",
                f"(Get-StoredCredential -Target '{name}').Password",
                f"(Get-AzKeyVaultSecret -VaultName kv-vwp-ops -Name {name.lower()} -AsPlainText)",
            ]
        )

    def h25_ref_gradle(self) -> str:
        return self.h25_util_deck(
            "ref_gradle",
            [
                'System.getenv("WERKBON_STORE_PASSWORD")',
                'providers.gradleProperty("werkbonKeyPassword").get()',
                'project.findProperty("crewApiSecret") as String',
                'localProps.getProperty("CREW_API_SECRET")',
                'providers.environmentVariable("CREW_API_SECRET").orElse("").get()',
            ],
        )

    def h25_ref_tf(self) -> str:
        return self.h25_util_deck(
            "ref_tf",
            [
                "var.pi_admin_password",
                "random_password.historian.result",
                "data.azurerm_key_vault_secret.cis_db.value",
                "data.aws_secretsmanager_secret_version.oms.secret_string",
                "sensitive(var.hes_api_key)",
                'module.secrets.values["scada-ro"]',
            ],
        )

    def h25_ref_gha(self) -> str:
        names = ["WERKBON_KEYSTORE_B64", "WERKBON_STORE_PASSWORD", "WERKBON_KEY_PASSWORD"]
        name = names[self.h25_util_turn("ref_gha", 3)]
        return self.pick(
            [f"${{{{ secrets.{name} }}}}", f"${{{{ vars.{name}_REF }}}}", f"${{{{ env.{name} }}}}"]
        )

    def h25_ref_ci(self) -> str:
        return self.h25_util_deck(
            "ref_ci",
            [
                "$CI_JOB_TOKEN",
                "${CI_REGISTRY_PASSWORD}",
                "$DEPLOY_TOKEN",
                "${MDM_DB_PASSWORD}",
                "$(cat $HES_KEY_FILE)",
                "%MDM_DB_PASSWORD%",
            ],
        )

    def h25_ref_helm(self) -> str:
        return self.h25_util_deck(
            "ref_helm",
            [
                "{{ .Values.hes.password }}",
                '{{ required "db password" .Values.db.password }}',
                '{{ include "portal.secretName" . }}',
                "{{ .Values.global.existingSecret }}",
                '{{ (lookup "v1" "Secret" .Release.Namespace "cis-db").data.password }}',
            ],
        )

    def h25_ref_store(self) -> str:
        return self.h25_util_deck(
            "ref_store",
            [
                "vault:secret/data/scada/historian#password",
                "@Microsoft.KeyVault(SecretUri=https://kv-vwp-prod.vault.azure.net/secrets/cis-db/)",
                "arn:aws:secretsmanager:eu-west-1:418273650912:secret:oms/db-Xd81",
                "op://OT-Infra/pi-webapi/password",
                "azurekeyvault://kv-vwp-ot/secrets/hes-api-key",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/ad:join_pw') }}",
            ],
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h25_placeholder(self) -> str:
        return self.h25_util_deck(
            "placeholder",
            [
                "<password>",
                "<wachtwoord>",
                "<senha>",
                "changeme",
                "CHANGE_ME",
                "xxxxxxxx",
                "your-api-key-here",
                "jouw-sleutel-hier",
                "sua-chave-aqui",
                "VUL_HIER_IN",
                "INSIRA_A_SENHA",
                "********",
                "[REDACTED]",
                "<insert token>",
                "TODO",
                "__REPLACE_ME__",
                "<geheim>",
                "<token-do-fornecedor>",
            ],
        )

    def h25_masked(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "*" * self.rng.randrange(8, 16)
        if shape == 1:
            return self.pick(["sk_live_", "glpat-", "xoxb-", "ghp_"]) + "*" * 12 + self.s(4, ALNUM)
        if shape == 2:
            return "[REDACTED by DLP]"
        return "•" * 10

    def h25_fake(self) -> str:
        return self.h25_util_deck(
            "fake",
            [
                "fake-token-for-tests",
                "not-a-real-secret",
                "dummy-api-key",
                "FAKE_" + self.s(12, string.ascii_uppercase),
                "test-secret-do-not-use",
                "x" * 32,
                "unit-test-only-" + self.s(6, HEX),
                "hunter2",
                "password-in-fixture",
                "0" * 32,
            ],
        )

    def h25_doc_example(self) -> str:
        """jwt.io's sample token (for a ``Bearer`` example), then another documented sample, in
        turn (the one template of this kind)."""
        if self.h25_util_turn("doc_example", 2) == 0:
            return (
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIi"
                "wiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
            )
        return self.h25_util_deck(
            "doc_example",
            [
                "AKIAIOSFODNN7EXAMPLE",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "xoxb-not-a-real-token-this-will-not-work",
            ],
        )

    def h25_aws_doc(self) -> str:
        """AWS's documented example key id, then its example secret, alternately (pairs)."""
        self._h25_awsdoc_turn ^= 1
        if self._h25_awsdoc_turn:
            return self.pick(["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"])
        return self.pick(
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"]
        )

    def h25_doc_uri(self) -> str:
        pw = self.h25_util_url_pw()
        return self.pick(
            [
                f"postgresql://cis_app:{pw}@db.example.com:5432/cis",
                f"https://api_user:{pw}@hes.example.test/api/v2",
                f"amqp://meter:{pw}@broker.invalid:5672/",
                f"mqtt://device01:{pw}@mqtt.example.org:1883",
                f"sftp://billprint:{pw}@sftp.example.net/outbound",
            ]
        )

    def h25_azurite(self) -> str:
        return self.pick(
            [
                "UseDevelopmentStorage=true",
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
            ]
        )

    def h25_policy(self) -> str:
        return self.h25_util_deck("policy", ["12", "14", "90", "180", "5", "10", "24", "15"])

    def h25_ui_en(self) -> str:
        return self.h25_util_deck(
            "ui_en",
            [
                "Forgot your password?",
                "Your password must be at least 12 characters long.",
                "The password you entered is incorrect.",
                "Enter the one-time code we sent to your phone",
                "Your session has expired. Please sign in again.",
                "Reset password",
                "Show password",
            ],
        )

    def h25_ui_nl(self) -> str:
        return self.h25_util_deck(
            "ui_nl",
            [
                "Wachtwoord vergeten?",
                "Uw wachtwoord moet minimaal 12 tekens bevatten.",
                "Het wachtwoord is onjuist. Probeer het opnieuw.",
                "Nieuw wachtwoord bevestigen",
                "Uw sessie is verlopen. Log opnieuw in.",
                "Wachtwoord tonen",
                "De verificatiecode is ongeldig",
            ],
        )

    def h25_ui_pt(self) -> str:
        return self.h25_util_deck(
            "ui_pt",
            [
                "Esqueceu sua senha?",
                "A senha deve ter pelo menos 12 caracteres.",
                "Senha incorreta. Tente novamente.",
                "Confirme a nova senha",
                "Sua sessão expirou. Entre novamente.",
                "Mostrar senha",
                "O código de verificação é inválido",
            ],
        )

    # ------------------------------------------------------------------ negatives: public material
    def h25_cert(self) -> str:
        der = bytes.fromhex("308203") + bytes([self.rng.randrange(0x40, 0xFF)])
        der += bytes.fromhex("308202") + bytes([self.rng.randrange(0x20, 0xFF)])
        der += bytes.fromhex("a003020102021412") + self.rng.randbytes(19 + 14 * 48)
        return self.h25_util_armor("CERTIFICATE", der)

    def h25_pubkey(self) -> str:
        der = bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100")
        der += self.rng.randbytes(256) + bytes.fromhex("0203010001")
        return self.h25_util_armor("PUBLIC KEY", der)

    def h25_ssh_pub(self) -> str:
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        body = base64.b64encode(blob).decode()
        who = self.pick(["ops@jump01", "j.devries@laptop-0412", "ansible@awx", "crewsync@build"])
        return f"ssh-ed25519 {body} {who}"

    def h25_mapbox_pk(self) -> str:
        payload = self.h25_util_jwt_part({"u": "vwp-gis", "a": self.s(25, LOWNUM)})
        return f"pk.{payload}.{self.s(22, URLSAFE)}"

    def h25_stripe_pk(self) -> str:
        return "pk_live_51" + self.s(97, ALNUM)

    def h25_public_id(self) -> str:
        """A Google OAuth client id, an Okta SPA client id, a Datadog RUM client token, in turn
        (the one template of this kind has its three slots in that order)."""
        turn = self.h25_util_turn("public_id", 3)
        if turn == 0:
            return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"
        if turn == 1:
            return "0oa" + self.s(17, ALNUM)
        return "pub" + self.s(32, HEX)

    def h25_twilio_sid(self) -> str:
        """Account, messaging service (twice), phone number SIDs in turn (one template)."""
        prefix = ["AC", "MG", "MG", "PN"][self.h25_util_turn("twilio_sid", 4)]
        return prefix + self.s(32, HEX)

    def h25_uuid(self) -> str:
        return self.uuid_key()

    # ------------------------------------------------------------------ negatives: identifiers
    def h25_meter_row(self) -> str:
        ean = self.h25_util_gs1("871687" + self.s(11, DIGITS))
        serial = self.pick(["LGZ", "ITR", "KAM", "SAG"]) + self.s(9, DIGITS)
        iccid = self.h25_util_luhn("8931" + self.s(14, DIGITS))
        imei = self.h25_util_luhn("35" + self.s(12, DIGITS))
        return f"{ean};{serial};{iccid};{imei}"

    def h25_systitle(self) -> str:
        return self.pick(["4C475A", "495452", "4B414D", "534147"]) + self.s(10, HEXU)

    def h25_eui(self) -> str:
        return self.pick(["70B3D5", "A84041", "0004A3"]) + self.s(10, HEXU)

    def h25_kcv(self) -> str:
        return self.s(6, HEXU)

    def h25_scada_tag(self) -> str:
        station = self.pick(["PS014", "PS022", "WTP01", "RES03", "SS-NORTH", "LS107"])
        point = self.pick(
            ["FLOW.PV", "LEVEL.PV", "P1.RUN", "P2.SPEED.SP", "CL2.RESIDUAL", "KW.TOTAL"]
        )
        if self.rng.randrange(2):
            return f"VWP.{station}.{point}"
        return f"[default]Water/{station}/{point.replace('.', '/')}"

    def h25_opc_node(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return f"ns=2;s={self.h25_scada_tag()}"
        if shape == 1:
            return f"ns=3;g={self.uuid_key()}"
        if shape == 2:
            return f"ns=4;b={self.h25_util_b64(16)}"
        return f"ns=2;i={self.rng.randrange(1000, 99999)}"

    def h25_gis_id(self) -> str:
        if self.rng.randrange(2):
            return "{" + self.uuid_key().upper() + "}"
        return self.pick(["HYD-", "VLV-", "MV-CAB-", "TR-"]) + self.s(6, DIGITS)

    def h25_hex32_id(self) -> str:
        return self.s(32, HEX)

    def h25_sri(self) -> str:
        return "sha512-" + self.h25_util_b64(64)

    def h25_build_ref(self) -> str:
        """A base-image digest, then a git revision (the one template of this kind)."""
        if self.h25_util_turn("build_ref", 2) == 0:
            return "sha256:" + self.s(64, HEX)
        return self.s(40, HEX)

    def h25_apple_id(self) -> str:
        return self.s(10, UPNUM)

    def h25_grafana_uid(self) -> str:
        return self.s(self.rng.randrange(9, 15), ALNUM + "-_")

    def h25_arn(self) -> str:
        acct = self.s(12, DIGITS)
        return self.pick(
            [
                f"arn:aws:iam::{acct}:role/vwp-meter-alerts-lambda",
                f"arn:aws:kms:eu-west-1:{acct}:key/{self.uuid_key()}",
                f"arn:aws:s3:::vwp-call-recordings-{acct}",
                f"arn:aws:sns:eu-west-1:{acct}:outage-notifications",
            ]
        )

    def h25_call_id(self) -> str:
        if self.rng.randrange(2):
            return f"{self.rng.randrange(1710000000, 1730000000)}.{self.rng.randrange(100, 99999)}"
        return self.uuid_key()

    def h25_b64_public(self) -> str:
        """A user name, a host name, a port, in turn, base64-encoded (the one template of this
        kind has its three slots in that order)."""
        options = [
            ["cis_app", "portal_app", "CN=svc-portal,OU=Service,DC=vwp,DC=lan"],
            ["pg-portal-prd01.vwp.lan", "pgbouncer.portal.svc.cluster.local"],
            ["5432", "6432"],
        ][self.h25_util_turn("b64_public", 3)]
        return base64.b64encode(self.pick(options).encode()).decode()


VALUES = Heldout25Values


def _t(path: str, text: str, kind: str, positive: bool) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = [
    # ================================================================ customer portal and billing
    _t(
        "portal/mijn-vwp/.env",
        """
        APP_NAME="Mijn VWP"
        APP_ENV=production
        APP_DEBUG=false
        APP_URL=https://mijn.vwp-utility.nl

        DB_CONNECTION=pgsql
        DB_HOST=pg-portal-prd01.vwp.lan
        DB_PORT=5432
        DB_DATABASE=portal
        DB_USERNAME=portal_app
        DB_PASSWORD={V}

        MAIL_MAILER=smtp
        MAIL_HOST=smtp.office365.com
        MAIL_PORT=587
        MAIL_USERNAME=noreply@vwp-utility.nl
        MAIL_PASSWORD="{V2}"
        MAIL_ENCRYPTION=tls

        REDIS_HOST=redis-portal.vwp.lan
        REDIS_PASSWORD={V3}
        """,
        "h25_pw",
        True,
    ),
    _t(
        "portal/mijn-vwp/.env.example",
        """
        APP_NAME="Mijn VWP"
        APP_ENV=local
        APP_DEBUG=true
        APP_URL=http://localhost:8000

        DB_CONNECTION=pgsql
        DB_HOST=127.0.0.1
        DB_PORT=5432
        DB_DATABASE=portal
        DB_USERNAME=portal_app
        DB_PASSWORD={V}

        MAIL_MAILER=log
        MAIL_PASSWORD={V2}

        STRIPE_KEY=
        STRIPE_SECRET={V3}
        STRIPE_WEBHOOK_SECRET={V4}
        """,
        "h25_placeholder",
        False,
    ),
    _t(
        "portal/mijn-vwp/config/services.php",
        """
        <?php

        return [

            'stripe' => [
                'model' => App\\Models\\Account::class,
                'key' => env('STRIPE_KEY'),
                // fallback so the payment page keeps working when the vault sidecar is slow
                'secret' => env('STRIPE_SECRET', '{V}'),
                'webhook' => [
                    'tolerance' => env('STRIPE_WEBHOOK_TOLERANCE', 300),
                ],
            ],

            'postmark' => [
                'token' => env('POSTMARK_TOKEN'),
            ],
        ];
        """,
        "h25_stripe",
        True,
    ),
    _t(
        "portal/mijn-vwp/app/Http/Controllers/StripeWebhookController.php",
        """
        <?php

        namespace App\\Http\\Controllers;

        use Illuminate\\Http\\Request;
        use Stripe\\Webhook;

        class StripeWebhookController extends Controller
        {
            // TODO(INC0041877): move to config/services.php once the deploy pipeline injects it
            private const ENDPOINT_SECRET = '{V}';

            public function handle(Request $request)
            {
                $event = Webhook::constructEvent(
                    $request->getContent(),
                    $request->header('Stripe-Signature'),
                    self::ENDPOINT_SECRET
                );

                if ($event->type === 'payment_intent.succeeded') {
                    dispatch(new \\App\\Jobs\\MarkInvoicePaid($event->data->object->metadata->invoice_no));
                }

                return response()->noContent();
            }
        }
        """,
        "h25_whsec",
        True,
    ),
    _t(
        "portal/mijn-vwp/resources/js/checkout.js",
        """
        import { loadStripe } from '@stripe/stripe-js';

        // Publishable keys: safe to ship to the browser (see Stripe docs, "API keys").
        const STRIPE_PUBLISHABLE_KEY = {
          nl: '{V}',
          be: '{V2}',
        };

        export async function mountCheckout(el, clientSecret) {
          const stripe = await loadStripe(STRIPE_PUBLISHABLE_KEY[document.documentElement.lang === 'nl-BE' ? 'be' : 'nl'], { locale: 'nl' });
          const elements = stripe.elements({ clientSecret, appearance: { theme: 'flat' } });
          elements.create('payment').mount(el);
          return { stripe, elements };
        }
        """,
        "h25_stripe_pk",
        False,
    ),
    _t(
        "portal/mijn-vwp/database/seeders/AdminUserSeeder.php",
        """
        <?php

        namespace Database\\Seeders;

        use App\\Models\\User;
        use Illuminate\\Database\\Seeder;

        class AdminUserSeeder extends Seeder
        {
            public function run(): void
            {
                // Hashes generated offline with `php artisan tinker` -> Hash::make(...)
                User::updateOrCreate(['email' => 'portal-admin@vwp-utility.nl'], [
                    'name' => 'Portal Admin',
                    'password' => '{V}',
                    'is_admin' => true,
                ]);
                User::updateOrCreate(['email' => 'klantenservice@vwp-utility.nl'], [
                    'name' => 'Klantenservice',
                    'password' => '{V2}',
                ]);
            }
        }
        """,
        "h25_hash",
        False,
    ),
    _t(
        "portal/selfservice-api/src/Vwp.SelfService.Api/appsettings.Production.json",
        """
        {
          "Logging": {
            "LogLevel": {
              "Default": "Warning",
              "Microsoft.AspNetCore": "Warning"
            }
          },
          "ConnectionStrings": {
            "CisSelfService": "{V}",
            "HistorianRead": "{V2}"
          },
          "Meter": {
            "ReadingsCacheMinutes": 15
          },
          "AllowedHosts": "api.vwp-utility.nl"
        }
        """,
        "h25_adonet",
        True,
    ),
    _t(
        "portal/selfservice-api/src/Vwp.SelfService.Api/appsettings.json",
        """
        {
          "ConnectionStrings": {
            "CisSelfService": "{V}",
            "ServiceBus": "{V2}"
          },
          "Smtp": {
            "Host": "smtp.office365.com",
            "User": "noreply@vwp-utility.nl",
            "Password": "{V3}"
          },
          "KeyVault": {
            "Uri": "https://kv-vwp-prod.vault.azure.net/"
          }
        }
        """,
        "h25_ref_store",
        False,
    ),
    _t(
        "portal/selfservice-api/src/Vwp.SelfService.Api/Program.cs",
        """
        using Azure.Identity;
        using Azure.Security.KeyVault.Secrets;
        using Microsoft.EntityFrameworkCore;
        using Vwp.SelfService.Api.Data;

        var builder = WebApplication.CreateBuilder(args);
        var secretClient = new SecretClient(new Uri(builder.Configuration["KeyVault:Uri"]!), new DefaultAzureCredential());

        var cisConnection = {V};
        builder.Services.AddDbContext<CisContext>(o => o.UseSqlServer(cisConnection));

        var hesApiKey = {V2};
        builder.Services.AddHttpClient("hes", c =>
        {
            c.BaseAddress = new Uri("https://hes-gw.vwp.lan/api/v3/");
            c.DefaultRequestHeaders.Add("X-Api-Key", hesApiKey);
        });

        var app = builder.Build();
        app.MapControllers();
        app.Run();
        """,
        "h25_ref_cs",
        False,
    ),
    _t(
        "portal/selfservice-api/tests/Vwp.SelfService.Tests/LoginTests.cs",
        """
        using System.Net;
        using System.Net.Http.Json;
        using Xunit;

        public class LoginTests : IClassFixture<ApiFactory>
        {
            private readonly HttpClient _client;

            public LoginTests(ApiFactory factory) => _client = factory.CreateClient();

            [Fact]
            public async Task Wrong_password_is_rejected()
            {
                var res = await _client.PostAsJsonAsync("/auth/login", new
                {
                    customerNumber = "1000234567",
                    password = "{V}",
                });
                Assert.Equal(HttpStatusCode.Unauthorized, res.StatusCode);
            }

            [Fact]
            public async Task Api_key_header_is_required()
            {
                _client.DefaultRequestHeaders.Add("X-Api-Key", "{V2}");
                var res = await _client.GetAsync("/meters/8716870000000000001/readings");
                Assert.Equal(HttpStatusCode.Forbidden, res.StatusCode);
            }
        }
        """,
        "h25_fake",
        False,
    ),
    _t(
        "portal/customer-rails/config/secrets.yml",
        """
        # Be sure to restart your server when you modify this file.
        # Legacy customer-move app (verhuisservice), still on Rails 5.2.

        development:
          secret_key_base: <%= ENV["DEV_SECRET_KEY_BASE"] %>

        test:
          secret_key_base: test-only-not-secret

        production:
          secret_key_base: {V}
        """,
        "h25_app_secret",
        True,
    ),
    _t(
        "portal/customer-rails/config/credentials/production.yml.enc",
        """
        {V}
        """,
        "h25_rails_enc",
        False,
    ),
    _t(
        "billing/cis-batch/bin/run_bill_print.sh",
        """
        #!/usr/bin/env bash
        # Nightly bill print extract -> print house SFTP. Scheduled in Control-M as CIS_BILLPRINT_01.
        set -euo pipefail

        export ORACLE_HOME=/u01/app/oracle/product/19.0.0/client_1
        export TNS_ADMIN=/etc/cis/tns
        RUN_DATE=$(date +%Y%m%d)
        OUT=/data/billprint/out/VWP_BILLS_${RUN_DATE}.xml

        $ORACLE_HOME/bin/sqlplus -s cis_batch/{V}@CISPRD <<SQL
        SET FEEDBACK OFF HEADING OFF
        @/opt/cis/sql/bill_print_extract.sql ${RUN_DATE} ${OUT}
        EXIT
        SQL

        sshpass -p '{V2}' sftp -oBatchMode=no billprint@sftp.printhouse-partner.nl <<SFTP
        put ${OUT} /inbound/vwp/
        bye
        SFTP
        """,
        "h25_pw",
        True,
    ),
    _t(
        "billing/cis-db/migrations/V2024_07_01__reporting_users.sql",
        """
        -- Reporting users for the Power BI gateway and the regulator extract (ACM).
        CREATE USER cis_report IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE cis_report_data
          QUOTA 2G ON cis_report_data;
        GRANT CREATE SESSION TO cis_report;
        GRANT SELECT ON cis.v_bill_summary TO cis_report;

        CREATE USER acm_extract IDENTIFIED BY "{V2}";
        GRANT CREATE SESSION TO acm_extract;
        GRANT SELECT ON cis.v_connection_register TO acm_extract;
        """,
        "h25_pw",
        True,
    ),
    _t(
        "billing/sap-isu/rfc/sapnwrfc.ini",
        """
        DEFAULT
        RFC_TRACE=0

        DEST=ISU_PRD
        ASHOST=sapisu-prd.vwp.lan
        SYSNR=00
        CLIENT=300
        USER=RFC_MDM
        PASSWD={V}
        LANG=EN

        DEST=ISU_QAS
        ASHOST=sapisu-qas.vwp.lan
        SYSNR=10
        CLIENT=300
        USER=RFC_MDM
        PASSWD={V2}
        LANG=EN
        """,
        "h25_pw",
        True,
    ),
    _t(
        "billing/payments/adyen-gateway/src/main/resources/application-prod.yml",
        """
        server:
          port: 8443
        spring:
          application:
            name: adyen-gateway
        adyen:
          environment: LIVE
          merchant-account: ValdemereWP_NL
          api-key: {V}
          hmac-key-ref: vault:secret/data/payments/adyen#hmac
        """,
        "h25_adyen",
        True,
    ),
    _t(
        "portal/notifications/sms_sender.py",
        """
        \"\"\"Outage and payment-reminder SMS via Twilio (Messaging Service 'VWP Meldingen').\"\"\"

        import os

        from twilio.rest import Client

        ACCOUNT_SID = os.environ["TWILIO_ACCOUNT_SID"]
        # rotated 2024-05 after the sandbox incident, keep in sync with the IVR
        AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "{V}")
        MESSAGING_SERVICE = os.environ["TWILIO_MESSAGING_SERVICE_SID"]

        _client = Client(ACCOUNT_SID, AUTH_TOKEN)


        def send(to: str, body: str) -> str:
            msg = _client.messages.create(to=to, messaging_service_sid=MESSAGING_SERVICE, body=body)
            return msg.sid
        """,
        "h25_twilio",
        True,
    ),
    _t(
        "portal/notifications/twilio.yaml",
        """
        # Twilio resources used by the notification service (identifiers only; the auth token
        # comes from the TWILIO_AUTH_TOKEN secret).
        account_sid: {V}
        messaging_services:
          meldingen: {V2}
          reminders: {V3}
        numbers:
          - sid: {V4}
            e164: "+3185XXXXXXX"
        """,
        "h25_twilio_sid",
        False,
    ),
    _t(
        "portal/notifications/mailer/index.js",
        """
        'use strict';

        const sgMail = require('@sendgrid/mail');
        const templates = require('./templates.json');

        sgMail.setApiKey(process.env.SENDGRID_API_KEY || '{V}');

        async function sendInvoiceMail(to, invoice) {
          await sgMail.send({
            to,
            from: { email: 'facturen@vwp-utility.nl', name: 'Valdemere Water & Power' },
            templateId: templates.invoice[invoice.locale] || templates.invoice.nl,
            dynamicTemplateData: invoice,
          });
        }

        module.exports = { sendInvoiceMail };
        """,
        "h25_sendgrid",
        True,
    ),
    _t(
        "portal/assistant/settings.py",
        """
        from pydantic_settings import BaseSettings


        class Settings(BaseSettings):
            \"\"\"Customer-service assistant ('Vera') on the portal.\"\"\"

            openai_api_key: str = "{V}"
            model: str = "gpt-4o-mini"
            max_tokens: int = 600
            kb_index: str = "vwp-faq-nl-pt"
            escalation_queue: str = "genesys:klantenservice"

            class Config:
                env_prefix = "ASSISTANT_"


        settings = Settings()
        """,
        "h25_openai",
        True,
    ),
    _t(
        "portal/frontend/src/locales/nl.json",
        """
        {
          "login": {
            "title": "Inloggen bij Mijn VWP",
            "customerNumber": "Klantnummer",
            "password": "Wachtwoord",
            "forgot": "{V}",
            "error": "{V2}"
          },
          "reset": {
            "title": "Nieuw wachtwoord instellen",
            "rules": "{V3}",
            "confirm": "{V4}"
          }
        }
        """,
        "h25_ui_nl",
        False,
    ),
    _t(
        "portal/frontend/src/locales/pt-BR.json",
        """
        {
          "login": {
            "title": "Entrar no Mijn VWP",
            "customerNumber": "Número do cliente",
            "password": "Senha",
            "forgot": "{V}",
            "error": "{V2}"
          },
          "reset": {
            "title": "Definir nova senha",
            "rules": "{V3}"
          }
        }
        """,
        "h25_ui_pt",
        False,
    ),
    _t(
        "portal/frontend/src/locales/en.json",
        """
        {
          "login": {
            "title": "Sign in to My VWP",
            "password": "Password",
            "forgot": "{V}",
            "error": "{V2}",
            "mfa": "{V3}"
          }
        }
        """,
        "h25_ui_en",
        False,
    ),
    _t(
        "portal/deploy/docker-compose.prod.yml",
        """
        services:
          portal:
            image: registry.vwp.lan/portal/mijn-vwp:2024.10.3
            env_file: .env
            depends_on: [db, redis, queue]
          db:
            image: postgres:16
            environment:
              POSTGRES_USER: portal_app
              POSTGRES_PASSWORD: {V}
              POSTGRES_DB: portal
            volumes:
              - pgdata:/var/lib/postgresql/data
          redis:
            image: redis:7-alpine
            command: ["redis-server", "--requirepass", "{V2}"]
          queue:
            image: rabbitmq:3.13-management
            environment:
              - RABBITMQ_DEFAULT_USER=portal
              - RABBITMQ_DEFAULT_PASS={V3}
        volumes:
          pgdata: {}
        """,
        "h25_pw",
        True,
    ),
    _t(
        "portal/deploy/k8s/portal-db-secret.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: portal-db
          namespace: portal
          labels:
            app.kubernetes.io/part-of: mijn-vwp
        type: Opaque
        data:
          username: cG9ydGFsX2FwcA==
          password: {V}
          redis-password: {V2}
        """,
        "h25_k8s_b64",
        True,
    ),
    _t(
        "portal/deploy/k8s/portal-config.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: portal-db-meta
          namespace: portal
        # Non-sensitive connection metadata kept next to the credentials for the operator.
        type: Opaque
        data:
          username: {V}
          host: {V2}
          port: {V3}
        """,
        "h25_b64_public",
        False,
    ),
    _t(
        "portal/deploy/k8s/portal-sealedsecret.yaml",
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: portal-stripe
          namespace: portal
        spec:
          encryptedData:
            STRIPE_SECRET: {V}
            STRIPE_WEBHOOK_SECRET: {V2}
          template:
            metadata:
              name: portal-stripe
            type: Opaque
        """,
        "h25_sealed",
        False,
    ),
    _t(
        "portal/deploy/helm/mijn-vwp/templates/deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ include "portal.fullname" . }}
        spec:
          replicas: {{ .Values.replicaCount }}
          template:
            spec:
              containers:
                - name: portal
                  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
                  env:
                    - name: DB_PASSWORD
                      value: {V}
                    - name: REDIS_PASSWORD
                      value: {V2}
                    - name: SECRET_NAME
                      value: {V3}
        """,
        "h25_ref_helm",
        False,
    ),
    _t(
        "portal/sso/okta-sync/sync_groups.go",
        """
        package main

        import (
        	"context"
        	"log"

        	"github.com/okta/okta-sdk-golang/v2/okta"
        )

        const oktaOrg = "https://vwp-utility.okta.com"

        // Token of the okta-sync service user (Read-only admin). Remove once the
        // deployment reads OKTA_API_TOKEN from the cluster secret.
        const oktaToken = "{V}"

        func main() {
        	ctx, client, err := okta.NewClient(context.Background(),
        		okta.WithOrgUrl(oktaOrg), okta.WithToken(oktaToken))
        	if err != nil {
        		log.Fatal(err)
        	}
        	groups, _, err := client.Group.ListGroups(ctx, nil)
        	if err != nil {
        		log.Fatal(err)
        	}
        	log.Printf("synced %d groups", len(groups))
        }
        """,
        "h25_okta",
        True,
    ),
    # ================================================================ smart meters: HES / MDM
    _t(
        "ami/hes-adapter/config/hes.yaml",
        """
        # Head-end system adapter (collects interval data and events from the HES REST API)
        hes:
          base_url: https://hes-gw.vwp.lan/api/v3
          timeout_s: 30
          auth:
            header: X-Api-Key
            key: {V}
          polling:
            interval_reads_cron: "15 * * * *"
            events_cron: "*/5 * * * *"
        kafka:
          bootstrap: kafka-01.ami.vwp.lan:9093,kafka-02.ami.vwp.lan:9093
          topic_reads: ami.reads.v2
        """,
        "h25_api_key",
        True,
    ),
    _t(
        "ami/dlms/keys/batch-2291-LGZ.csv",
        """
        # Key export from the meter vendor for delivery batch 2291 (E360, 120 units). Import into HSM
        # with `hsmtool import-dlms --batch 2291` and DELETE this file afterwards.
        serial;key_id;value
        LGZ910022910;GUEK;{V}
        LGZ910022910;GAK;{V2}
        LGZ910022911;GUEK;{V3}
        LGZ910022911;GAK;{V4}
        """,
        "h25_aes_hex",
        True,
    ),
    _t(
        "ami/dlms/system-titles.txt",
        """
        # DLMS system titles (manufacturer flag + serial) of the pilot meters at PS022 and WTP01.
        # Used by the HES to map associations; not key material.
        PS022-MAIN  {V}
        PS022-AUX   {V2}
        WTP01-INTAKE {V3}
        WTP01-UV    {V4}
        """,
        "h25_systitle",
        False,
    ),
    _t(
        "ami/field-tools/optical-probe/ProbeSettings.xml",
        """
        <?xml version="1.0" encoding="utf-8"?>
        <ProbeSettings version="4.2">
          <Port>COM4</Port>
          <BaudRate>9600</BaudRate>
          <Association client="16" server="1" authentication="Low">
            <!-- LLS password as delivered by the vendor, never changed on the 2019 roll-out -->
            <Password>{V}</Password>
          </Association>
          <Association client="1" server="1" authentication="Low">
            <Password>{V2}</Password>
          </Association>
        </ProbeSettings>
        """,
        "h25_lls_pw",
        True,
    ),
    _t(
        "ami/mdm/etl/load_reads.py",
        """
        \"\"\"Load validated interval reads from the staging bucket into the MDM warehouse.\"\"\"

        import logging

        import pandas as pd
        from sqlalchemy import create_engine

        log = logging.getLogger(__name__)

        ENGINE = create_engine(
            "{V}",
            pool_pre_ping=True,
        )


        def load(path: str) -> int:
            df = pd.read_parquet(path)
            df = df[df["quality"].isin(["VALID", "ESTIMATED"])]
            df.to_sql("interval_read", ENGINE, schema="mdm", if_exists="append", index=False)
            log.info("loaded %d reads from %s", len(df), path)
            return len(df)
        """,
        "h25_db_url",
        True,
    ),
    _t(
        "ami/mdm/etl/settings.py",
        """
        import os

        import keyring
        from decouple import config

        MDM_DB_HOST = "sql-mdm-02.vwp.lan"
        MDM_DB_USER = "mdm_etl"
        MDM_DB_PASSWORD = {V}
        HES_API_KEY = {V2}
        STAGING_BUCKET = "s3://vwp-ami-staging/reads/"
        LOG_LEVEL = os.getenv("LOG_LEVEL", "INFO")
        """,
        "h25_ref_py",
        False,
    ),
    _t(
        "ami/hes/mosquitto/conf.d/bridge-hes.conf",
        """
        # Bridge from the substation concentrators to the central HES broker.
        connection hes-central
        address mqtt-hes.ot.vwp.lan:8883
        bridge_protocol_version mqttv311
        remote_clientid dc-north-01
        remote_username dc-north-01
        remote_password {V}
        bridge_cafile /etc/mosquitto/ca/vwp-ot-ca.pem
        topic meters/# out 1 "" dc/north/
        topic commands/# in 1 "" dc/north/
        """,
        "h25_pw",
        True,
    ),
    _t(
        "ami/hes/mosquitto/passwd",
        """
        dc-north-01:{V}
        dc-south-01:{V2}
        hes-ingest:{V3}
        """,
        "h25_mosq_hash",
        False,
    ),
    _t(
        "ami/hes/kafka/client-hes.properties",
        """
        bootstrap.servers=kafka-01.ami.vwp.lan:9093,kafka-02.ami.vwp.lan:9093,kafka-03.ami.vwp.lan:9093
        security.protocol=SASL_SSL
        sasl.mechanism=SCRAM-SHA-512
        sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
            username="hes-ingest" \\
            password="{V}";
        ssl.truststore.location=/etc/kafka/secrets/ami-truststore.jks
        ssl.truststore.type=JKS
        """,
        "h25_pw",
        True,
    ),
    _t(
        "ami/mdm/exports/connection_register_sample.csv",
        """
        ean;meter_serial;sim_iccid;modem_imei
        {V}
        {V2}
        {V3}
        {V4}
        """,
        "h25_meter_row",
        False,
    ),
    _t(
        "ami/lora/chirpstack/chirpstack.toml",
        """
        [logging]
        level="info"

        [postgresql]
        dsn="postgres://chirpstack:@pg-lora.ot.vwp.lan/chirpstack?sslmode=require"
        max_open_connections=10

        [network]
        net_id="000000"
        enabled_regions=["eu868"]

        [api]
        bind="0.0.0.0:8080"
        secret="{V}"
        """,
        "h25_jwt_secret",
        True,
    ),
    _t(
        "ami/lora/devices/water-loggers.json",
        """
        {
          "application": "water-pressure-loggers",
          "devices": [
            {"name": "PL-0112", "dev_eui": "70B3D5E75E0012A1", "app_key": "{V}"},
            {"name": "PL-0113", "dev_eui": "70B3D5E75E0012A2", "app_key": "{V2}"},
            {"name": "PL-0114", "dev_eui": "70B3D5E75E0012A3", "app_key": "{V3}"}
          ]
        }
        """,
        "h25_aes_hex",
        True,
    ),
    _t(
        "ami/lora/devices/leak-sensors-inventory.csv",
        """
        name,dev_eui,site
        LS-3001,{V},RES03
        LS-3002,{V2},RES03
        LS-3003,{V3},PS014
        LS-3004,{V4},PS022
        """,
        "h25_eui",
        False,
    ),
    _t(
        "ami/docs/runbook-dlms-master-key-rotation.md",
        """
        # Runbook: DLMS master key rotation (E360 fleet)

        Owner: AMI team. Last run: 2024-03-18 (change CHG0031144).

        1. Open a session on `hsm-ami-01` with the two smartcards (dual control).
        2. Generate the new master key and export it wrapped for the vendor tool.
        3. For the pilot group the unwrapped master key was used directly:

           new master key (KEK) = `{V}`

        4. Push `SetMasterKey` to the pilot group via the HES job `MK-ROTATE-PILOT`.
        5. Verify with `hsmtool kcv --label dlms-kek-2024` and record the KCV in the change.
        """,
        "h25_aes_hex",
        True,
    ),
]
TEMPLATES += [
    # ================================================================ SCADA / OT
    _t(
        "scada/ignition/projects/water-ops/scripts/alarm_notify/code.py",
        """
        # Ignition gateway script (Jython 2.7): e-mail fallback when the SMS gateway is down.
        import smtplib
        from email.mime.text import MIMEText

        SMTP_HOST = "smtp-relay.ot.vwp.lan"
        SMTP_USER = "ignition-alarms@vwp-utility.nl"
        SMTP_PASS = "{V}"

        def send(pipeline, event):
        	msg = MIMEText("%s %s at %s" % (event.get("source"), event.get("displayPath"), event.get("eventTime")))
        	msg["Subject"] = "[VWP-SCADA] %s" % event.get("priority")
        	msg["From"] = SMTP_USER
        	msg["To"] = "storingsdienst@vwp-utility.nl"
        	s = smtplib.SMTP(SMTP_HOST, 587)
        	s.starttls()
        	s.login(SMTP_USER, SMTP_PASS)
        	s.sendmail(SMTP_USER, [msg["To"]], msg.as_string())
        	s.quit()
        """,
        "h25_pw",
        True,
    ),
    _t(
        "scada/ignition/projects/water-ops/tags/pumpstations.csv",
        """
        tag_path,eng_unit,alarm_hi
        {V},m3/h,850
        {V2},m,4.2
        {V3},mg/l,0.8
        {V4},kW,410
        """,
        "h25_scada_tag",
        False,
    ),
    _t(
        "scada/historian/pi/Export-Daily.ps1",
        """
        param([datetime]$Day = (Get-Date).Date.AddDays(-1))

        Import-Module OSIsoft.PowerShell
        $pass = {V}
        $cred = New-Object System.Management.Automation.PSCredential("OT\\svc-piexport", (ConvertTo-SecureString $pass -AsPlainText -Force))
        $con = Connect-PIDataArchive -PIDataArchiveMachineName PIDA-01 -WindowsCredential $cred
        Get-PIValue -PointName "VWP.WTP01.FLOW.PV" -StartTime $Day -EndTime $Day.AddDays(1) -Connection $con |
            Export-Csv "\\\\fs01\\exports\\pi\\wtp01_$($Day.ToString('yyyyMMdd')).csv" -NoTypeInformation
        """,
        "h25_ref_ps",
        False,
    ),
    _t(
        "scada/historian/telegraf/telegraf.conf",
        """
        [agent]
          interval = "10s"
          flush_interval = "10s"
          hostname = "edge-ps014"

        [[outputs.influxdb_v2]]
          urls = ["https://influx.ot.vwp.lan:8086"]
          token = "{V}"
          organization = "vwp-ot"
          bucket = "pumpstations"

        [[inputs.modbus]]
          name = "ps014_vfd"
          controller = "tcp://10.61.14.20:502"
          slave_id = 1
          holding_registers = [
            { name = "speed_rpm", byte_order = "AB", data_type = "UINT16", scale = 1.0, address = [100] },
          ]
        """,
        "h25_influx",
        True,
    ),
    _t(
        "scada/historian/telegraf/telegraf-opcua.conf",
        """
        [[outputs.influxdb_v2]]
          urls = ["https://influx.ot.vwp.lan:8086"]
          token = "{V}"
          organization = "vwp-ot"
          bucket = "opcua"

        [[inputs.opcua]]
          endpoint = "opc.tcp://kepware01.ot.vwp.lan:49320"
          security_policy = "Basic256Sha256"
          security_mode = "SignAndEncrypt"
          auth_method = "UserName"
          username = "telegraf"
          password = "{V2}"
        """,
        "h25_ref_env",
        False,
    ),
    _t(
        "scada/opcua/nodeset-map.yaml",
        """
        # Mapping of historian points to OPC UA node ids on KEPWARE01 (channel WaterOps)
        points:
          - name: WTP01 intake flow
            node: "{V}"
          - name: PS014 pump 2 speed setpoint
            node: "{V2}"
          - name: RES03 level
            node: "{V3}"
          - name: SS-NORTH feeder 4 kW
            node: "{V4}"
        """,
        "h25_opc_node",
        False,
    ),
    _t(
        "scada/opcua/collector/pki/own/private/collector.pem",
        """
        {V}
        """,
        "h25_rsa_key",
        True,
    ),
    _t(
        "scada/hmi/inventory/hmi-panels.ini",
        """
        ; HMI panel inventory for the VNC viewer launcher (OT engineering laptops only)
        [WTP01-HMI-1]
        host=10.61.1.21
        port=5900
        vnc_password={V}

        [PS014-HMI]
        host=10.61.14.21
        port=5900
        vnc_password={V2}

        [RES03-HMI]
        host=10.61.3.21
        port=5900
        vnc_password={V3}
        """,
        "h25_vendor_pw",
        True,
    ),
    _t(
        "scada/rtu/dnp3-sav5/outstation-ss-north.conf",
        """
        # DNP3 Secure Authentication v5 - SS-NORTH RTU (outstation 12, master 1)
        outstation_address = 12
        master_address = 1
        sav5 {
            enabled = true
            hmac = "HMAC-SHA256"
            key_wrap = "AES-256"
            user 1 {
                role = "OPERATOR"
                update_key = "{V}"
            }
            user 3 {
                role = "ENGINEER"
                update_key = "{V2}"
            }
        }
        """,
        "h25_aes_hex",
        True,
    ),
    _t(
        "scada/rtu/sel/SS-NORTH-RTAC/access-levels.txt",
        """
        SS-NORTH RTAC / SEL-751 feeder relays - access levels after commissioning (FAT 2021)

        F4-751 (front port)
          ACC, level 1: {V}
          2AC, level 2: {V2}
        F5-751 (front port)
          ACC, level 1: {V3}
          2AC, level 2: {V4}

        Note: default passwords still active, change planned with the firmware upgrade (PRJ-OT-117).
        """,
        "h25_sel_pw",
        True,
    ),
    _t(
        "scada/wonderware/deploy/galaxy_deploy.cmd",
        """
        @echo off
        REM Deploys the WaterOps galaxy objects after the nightly export (IDE build box)
        set GRNODE=AVEVA-GR01
        set GALAXY=WaterOps

        "C:\\Program Files (x86)\\ArchestrA\\Framework\\Bin\\aaGR.exe" /gr:%GRNODE% /galaxy:%GALAXY% ^
            /user:{V} /password:{V} /deploy /cascade
        if errorlevel 1 exit /b 1
        """,
        "h25_user_same",
        True,
    ),
    _t(
        "scada/ot-switches/ie3400-ps014-stage.cfg",
        """
        ! staging config for PS014 access switch, applied from the console by the installer
        hostname PS014-IE3400-01
        !
        enable secret 0 {V}
        username netops privilege 15 secret 0 {V2}
        !
        aaa new-model
        aaa authentication login default local
        !
        interface Vlan614
         ip address 10.61.14.2 255.255.255.0
        !
        line vty 0 4
         transport input ssh
        """,
        "h25_pw",
        True,
    ),
    _t(
        "scada/ot-switches/ie3400-ps014-running.cfg",
        """
        ! Last configuration change at 03:12:44 CET Tue Oct 8 2024 by netops
        hostname PS014-IE3400-01
        !
        enable secret {V}
        username netops privilege 15 secret {V2}
        username breakglass privilege 15 secret {V3}
        !
        aaa new-model
        aaa authentication login default group tacacs+ local
        """,
        "h25_net_hash",
        False,
    ),
    _t(
        "scada/ot-switches/snmp_exporter/snmp.yml",
        """
        auths:
          ot_v2:
            community: {V}
            version: 2
          ot_v3:
            username: prom-poller
            security_level: authPriv
            password: {V2}
            auth_protocol: SHA256
            priv_protocol: AES
            priv_password: {V3}
            version: 3
        """,
        "h25_snmp",
        True,
    ),
    _t(
        "scada/ot-firewall/fgt-ot-core-vpn.conf",
        """
        config vpn ipsec phase1-interface
            edit "to-ps022"
                set interface "wan1"
                set ike-version 2
                set peertype any
                set net-device disable
                set proposal aes256-sha256
                set remote-gw 10.99.22.1
                set psksecret {V}
            next
            edit "to-wtp01"
                set interface "wan1"
                set ike-version 2
                set proposal aes256gcm-prfsha384
                set remote-gw 10.99.1.1
                set psksecret {V2}
            next
        end
        """,
        "h25_psk",
        True,
    ),
    _t(
        "ot-remote-access/guacamole/user-mapping.xml",
        """
        <user-mapping>
            <!-- Vendor jump access for the UV disinfection skid (WTP01) -->
            <authorize username="vendor-uvskid" password="{V}">
                <connection name="WTP01-UV-HMI">
                    <protocol>rdp</protocol>
                    <param name="hostname">10.61.1.40</param>
                    <param name="username">Operator</param>
                    <param name="password">{V2}</param>
                    <param name="security">nla</param>
                </connection>
            </authorize>
        </user-mapping>
        """,
        "h25_pw",
        True,
    ),
    _t(
        "ot-remote-access/guacamole/user-mapping.prod.xml",
        """
        <user-mapping>
            <authorize username="vendor-uvskid" password="{V}" encoding="sha256">
                <connection name="WTP01-UV-HMI">
                    <protocol>rdp</protocol>
                    <param name="hostname">10.61.1.40</param>
                    <param name="username">${GUAC_USERNAME}</param>
                    <param name="password">${GUAC_PASSWORD}</param>
                </connection>
            </authorize>
            <authorize username="ot-eng" password="{V2}" encoding="sha256">
                <connection name="PS014-HMI"><protocol>vnc</protocol>
                    <param name="hostname">10.61.14.21</param></connection>
            </authorize>
        </user-mapping>
        """,
        "h25_sha256_hex",
        False,
    ),
    _t(
        "scada/node-red/flows_cred.json",
        """
        {
            "8a3f21c4.b2e61": {
                "user": "nodered-ps022",
                "password": "{V}"
            },
            "c91d7a55.04f3e8": {
                "user": "hes-bridge",
                "password": "{V2}"
            }
        }
        """,
        "h25_pw",
        True,
    ),
    # ================================================================ outage management (OMS)
    _t(
        "oms/adapters/ivr-callback/src/client.ts",
        """
        import axios from 'axios';

        const OMS_BASE = 'https://oms-api.vwp.lan/v2';

        // IVR -> OMS: customers reporting "no power" / "no water" by phone.
        export const oms = axios.create({
          baseURL: OMS_BASE,
          timeout: 5000,
          headers: { 'X-API-Key': '{V}', 'Content-Type': 'application/json' },
        });

        export async function reportOutage(ean: string, kind: 'power' | 'water', ani: string) {
          const { data } = await oms.post('/calls', { ean, kind, ani, source: 'ivr' });
          return data.incidentId as string;
        }
        """,
        "h25_api_key",
        True,
    ),
    _t(
        "oms/adapters/ivr-callback/src/config.ts",
        """
        export const config = {
          omsBase: 'https://oms-api.vwp.lan/v2',
          omsApiKey: {V},
          sentryToken: {V2},
          timeoutMs: 5000,
        };
        """,
        "h25_ref_js",
        False,
    ),
    _t(
        "oms/notify/teams_alerts.py",
        """
        \"\"\"Posts large-outage alerts (> 500 connections) to the Teams 'Storingen' channel.\"\"\"

        import requests

        WEBHOOK = "{V}"


        def post(incident: dict) -> None:
            card = {
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": f"Storing {incident['id']}",
                "themeColor": "D7000C",
                "title": f"{incident['kind'].upper()} storing - {incident['area']}",
                "text": f"Getroffen aansluitingen: {incident['connections']}",
            }
            requests.post(WEBHOOK, json=card, timeout=10).raise_for_status()
        """,
        "h25_webhook_teams",
        True,
    ),
    _t(
        "oms/integrations/weather/client.go",
        """
        package weather

        import (
        	"encoding/json"
        	"fmt"
        	"net/http"
        	"time"
        )

        // Lightning and wind forecasts for storm pre-staging of crews.
        const apiKey = "{V}"

        var httpClient = &http.Client{Timeout: 15 * time.Second}

        func Forecast(lat, lon float64) (map[string]any, error) {
        	url := fmt.Sprintf("https://api.tomorrow.io/v4/weather/forecast?location=%f,%f&apikey=%s", lat, lon, apiKey)
        	resp, err := httpClient.Get(url)
        	if err != nil {
        		return nil, err
        	}
        	defer resp.Body.Close()
        	var out map[string]any
        	return out, json.NewDecoder(resp.Body).Decode(&out)
        }
        """,
        "h25_api_key",
        True,
    ),
    _t(
        "oms/scripts/outage_sms_blast.rb",
        """
        #!/usr/bin/env ruby
        # Sends the "power restored" SMS to every customer of a closed incident.
        require 'twilio-ruby'
        require 'csv'

        account_sid = ENV.fetch('TWILIO_ACCOUNT_SID')
        auth_token  = ENV.fetch('TWILIO_AUTH_TOKEN', '{V}')
        client = Twilio::REST::Client.new(account_sid, auth_token)

        CSV.foreach(ARGV.fetch(0), headers: true) do |row|
          client.messages.create(
            messaging_service_sid: ENV.fetch('TWILIO_MSG_SERVICE'),
            to: row['mobile'],
            body: "VWP: de storing in #{row['postcode']} is verholpen. Excuses voor het ongemak."
          )
        end
        """,
        "h25_twilio",
        True,
    ),
    _t(
        "oms/docs/outage-status-api.md",
        """
        # Outage status API (public)

        Partners (municipalities, the regional safety board) can poll open incidents.

        ```http
        GET /v1/outages?postcode=1234AB HTTP/1.1
        Host: status.example.com
        Authorization: Bearer {V}
        ```

        The token above is the example from the OpenAPI spec; request a real one via the partner portal.
        The SDK README uses `{V2}` in its snippets; replace it before running them.
        """,
        "h25_doc_example",
        False,
    ),
    _t(
        "oms/crew-dispatch/application.yml",
        """
        spring:
          datasource:
            url: jdbc:oracle:thin:@//ora-oms.vwp.lan:1521/OMSPRD
            username: OMS_DISPATCH
            password: {V}
          jpa:
            open-in-view: false
        dispatch:
          oms-events-topic: oms.incidents.v1
          crew-app-push: true
        """,
        "h25_at_rest",
        False,
    ),
    # ================================================================ GIS
    _t(
        "gis/arcgis/publish/publish_layers.py",
        """
        \"\"\"Publishes the nightly network extract (mains, valves, hydrants, MV cables) to ArcGIS Online.\"\"\"

        from arcgis.gis import GIS

        gis = GIS("https://vwp.maps.arcgis.com", api_key="{V}")

        LAYERS = {
            "water_mains": "gis/out/water_mains.gpkg",
            "hydrants": "gis/out/hydrants.gpkg",
            "mv_cables": "gis/out/mv_cables.gpkg",
        }

        for title, path in LAYERS.items():
            item = gis.content.add({"title": title, "type": "GeoPackage", "tags": "vwp,network"}, data=path)
            item.publish(overwrite=True)
        """,
        "h25_arcgis",
        True,
    ),
    _t(
        "gis/arcgis/webmaps/field-viewer.json",
        """
        {
          "title": "Field viewer - water and MV network",
          "operationalLayers": [
            {"id": "mains", "itemId": "{V}", "layerType": "ArcGISFeatureLayer"},
            {"id": "hydrants", "itemId": "{V2}", "layerType": "ArcGISFeatureLayer"},
            {"id": "mv_cables", "itemId": "{V3}", "layerType": "ArcGISFeatureLayer"}
          ],
          "baseMap": {"baseMapLayers": [{"itemId": "{V4}"}]}
        }
        """,
        "h25_hex32_id",
        False,
    ),
    _t(
        "gis/geoserver/workspaces/vwp/network/datastore.xml",
        """
        <dataStore>
          <id>DataStoreInfoImpl-network</id>
          <name>network</name>
          <type>PostGIS</type>
          <enabled>true</enabled>
          <connectionParameters>
            <entry key="host">gis-pg.vwp.lan</entry>
            <entry key="port">5432</entry>
            <entry key="database">gis</entry>
            <entry key="schema">network</entry>
            <entry key="user">geoserver</entry>
            <entry key="passwd">{V}</entry>
            <entry key="dbtype">postgis</entry>
          </connectionParameters>
        </dataStore>
        """,
        "h25_pw",
        True,
    ),
    _t(
        "gis/geoserver/workspaces/vwp/assets/datastore.xml",
        """
        <dataStore>
          <name>assets</name>
          <type>PostGIS</type>
          <connectionParameters>
            <entry key="host">gis-pg.vwp.lan</entry>
            <entry key="database">gis</entry>
            <entry key="user">geoserver</entry>
            <entry key="passwd">{V}</entry>
          </connectionParameters>
        </dataStore>
        """,
        "h25_at_rest",
        False,
    ),
    _t(
        "gis/tiles/upload_tiles.sh",
        """
        #!/bin/sh
        # Uploads the mbtiles of the hydrant layer to Mapbox (tileset vwp-gis.hydrants)
        set -e
        export MAPBOX_ACCESS_TOKEN="{V}"
        tilesets upload-source vwp-gis hydrants-src out/hydrants.geojson.ld --replace
        tilesets publish vwp-gis.hydrants
        """,
        "h25_mapbox_sk",
        True,
    ),
    _t(
        "gis/web/outage-map/src/map.js",
        """
        import mapboxgl from 'mapbox-gl';

        // Public token, URL-restricted to storingen.vwp-utility.nl (scopes: styles:read, tiles:read)
        mapboxgl.accessToken = '{V}';

        export function createMap(container) {
          return new mapboxgl.Map({
            container,
            style: 'mapbox://styles/vwp-gis/clt0outage',
            center: [5.12, 52.09],
            zoom: 9,
          });
        }
        """,
        "h25_mapbox_pk",
        False,
    ),
    _t(
        "gis/data/samples/hydrants_sample.geojson",
        """
        {
          "type": "FeatureCollection",
          "features": [
            {"type": "Feature", "properties": {"GlobalID": "{V}", "status": "in use", "diameter_mm": 100},
             "geometry": {"type": "Point", "coordinates": [5.1183, 52.0912]}},
            {"type": "Feature", "properties": {"GlobalID": "{V2}", "status": "in use", "diameter_mm": 80},
             "geometry": {"type": "Point", "coordinates": [5.1207, 52.0899]}},
            {"type": "Feature", "properties": {"GlobalID": "{V3}", "status": "out of service", "diameter_mm": 100},
             "geometry": {"type": "Point", "coordinates": [5.1251, 52.0874]}}
          ]
        }
        """,
        "h25_gis_id",
        False,
    ),
]
TEMPLATES += [
    # ================================================================ field-crew mobile apps
    _t(
        "field-app/android/keystore.properties",
        """
        # Upload key of the VWP Werkbon app (Play Console: nl.vwp.werkbon)
        storeFile=../keystores/vwp-werkbon-upload.jks
        storePassword={V}
        keyAlias=werkbon-upload
        keyPassword={V2}
        """,
        "h25_pw",
        True,
    ),
    _t(
        "field-app/android/local.properties",
        """
        ## This file must *NOT* be checked into Version Control Systems,
        # as it contains information specific to your local configuration.
        sdk.dir=/Users/r.bakker/Library/Android/sdk
        MAPS_API_KEY={V}
        """,
        "h25_google_api",
        True,
    ),
    _t(
        "field-app/android/app/build.gradle.kts",
        """
        plugins {
            id("com.android.application")
            id("org.jetbrains.kotlin.android")
        }

        android {
            namespace = "nl.vwp.werkbon"
            defaultConfig {
                applicationId = "nl.vwp.werkbon"
                minSdk = 28
                targetSdk = 34
                buildConfigField("String", "CREW_API_BASE", "\\"https://crew-api.vwp-utility.nl\\"")
                buildConfigField("String", "CREW_API_SECRET", {V})
            }
            signingConfigs {
                create("release") {
                    storePassword = {V2}
                    keyPassword = {V3}
                }
            }
        }
        """,
        "h25_ref_gradle",
        False,
    ),
    _t(
        "field-app/android/app/src/main/java/nl/vwp/werkbon/sync/OfflineSync.kt",
        """
        package nl.vwp.werkbon.sync

        import okhttp3.OkHttpClient
        import okhttp3.Request

        object OfflineSync {
            private const val BASE = "https://crew-api.vwp-utility.nl/v1"
            // service account of the sync worker; TODO move to EncryptedSharedPreferences
            private const val AUTH = "Basic {V}"

            private val http = OkHttpClient()

            fun pushWorkOrders(json: String): Boolean {
                val req = Request.Builder()
                    .url("$BASE/workorders/batch")
                    .header("Authorization", AUTH)
                    .post(json.toRequestBody())
                    .build()
                return http.newCall(req).execute().use { it.isSuccessful }
            }
        }
        """,
        "h25_basic_b64",
        True,
    ),
    _t(
        "field-app/server/push/fcm_push.py",
        """
        \"\"\"Legacy FCM HTTP push for crew devices still on app version < 5.0.\"\"\"

        import requests

        FCM_SERVER_KEY = "{V}"


        def push(token: str, title: str, body: str) -> None:
            requests.post(
                "https://fcm.googleapis.com/fcm/send",
                headers={"Authorization": f"key={FCM_SERVER_KEY}"},
                json={"to": token, "notification": {"title": title, "body": body}, "priority": "high"},
                timeout=10,
            ).raise_for_status()
        """,
        "h25_fcm_key",
        True,
    ),
    _t(
        "field-app/ios/fastlane/keys/AuthKey_7K3XH2M9QA.p8",
        """
        {V}
        """,
        "h25_p8",
        True,
    ),
    _t(
        "field-app/ios/fastlane/Appfile",
        """
        app_identifier("nl.vwp.werkbon")
        apple_id("mobile@vwp-utility.nl")
        itc_team_id("{V}")
        team_id("{V2}")
        """,
        "h25_apple_id",
        False,
    ),
    _t(
        "field-app/react-native/.env.production",
        """
        API_BASE=https://crew-api.vwp-utility.nl/v1
        SENTRY_DSN=https://o450123.ingest.sentry.io/5512345
        SENTRY_ORG=vwp
        SENTRY_PROJECT=werkbon-rn
        SENTRY_AUTH_TOKEN={V}
        """,
        "h25_sentry",
        True,
    ),
    _t(
        "field-app/react-native/__tests__/auth.test.ts",
        """
        import { login } from '../src/auth';
        import { server, rest } from '../test/msw';

        describe('login', () => {
          it('stores the token after a successful login', async () => {
            server.use(rest.post('*/auth/login', (_req, res, ctx) => res(ctx.json({ token: '{V}' }))));
            const session = await login('monteur01', '{V2}');
            expect(session.token).toBe('{V}');
          });

          it('rejects an empty password', async () => {
            await expect(login('monteur01', '')).rejects.toThrow('password required');
          });
        });
        """,
        "h25_fake",
        False,
    ),
    _t(
        "field-app/docs/handleiding-veldtablet.md",
        """
        # Handleiding veldtablet (Samsung Galaxy Tab Active)

        ## Eerste keer opstarten

        1. Zet de tablet aan en kies *Nederlands*.
        2. Verbind met het wifi-netwerk `VWP-Depot` (alleen op het depot).
        3. De tablet wordt automatisch ingeschreven in Intune.

        ## Beheerdersmodus

        Heeft de monteur de kiosk-modus verlaten? Het wachtwoord van de tablet-beheerder is
        **{V}** (niet doorgeven aan onderaannemers). Na gebruik de tablet opnieuw opstarten.

        ## Storingen

        Bel de ICT-servicedesk, toestel 4400.
        """,
        "h25_pw",
        True,
    ),
    _t(
        "field-app/docs/manual-campo-ptbr.md",
        """
        # Manual de campo - equipes terceirizadas (contrato de leitura e manutenção)

        ## Acesso ao tablet

        Use o seu usuário do portal de fornecedores. Se o aplicativo pedir o PIN do caminhão,
        informe o número da viatura.

        ## Wi-Fi dos caminhões

        Rede: `VWP-Crew-Van`
        A senha do Wi-Fi do caminhão é `{V}`. Não compartilhe com terceiros.

        ## Suporte

        Central de atendimento às equipes: ramal 4410 (24h).
        """,
        "h25_wifi_psk",
        True,
    ),
    _t(
        "field-app/docs/wachtwoordbeleid-veldapparaten.md",
        """
        # Wachtwoordbeleid veldapparaten

        Instellingen in Intune (profiel *VWP-Veld-Compliance*):

        | Instelling | Waarde |
        |------------|--------|
        | Minimale lengte pincode | {V} |
        | Maximaal aantal dagen tot verlopen | {V2} |
        | Scherm vergrendelen na (minuten) | {V3} |

        Het beheerderswachtwoord staat in de kluis, nooit in dit document: `<zie Keeper: Veld/Tablet-admin>`.
        """,
        "h25_policy",
        False,
    ),
    _t(
        "field-app/mdm/Register-IntuneApp.ps1",
        """
        # Registers the Werkbon app config in Intune through Graph (app registration 'vwp-intune-automation')
        $TenantId = "vwputility.onmicrosoft.com"
        $ClientId = "4c1d9a0e-6f2b-4a57-9e31-0b7d2f8c5a61"
        $ClientSecret = "{V}"

        $body = @{
            grant_type    = "client_credentials"
            scope         = "https://graph.microsoft.com/.default"
            client_id     = $ClientId
            client_secret = $ClientSecret
        }
        $token = (Invoke-RestMethod -Method Post -Uri "https://login.microsoftonline.com/$TenantId/oauth2/v2.0/token" -Body $body).access_token
        Invoke-RestMethod -Headers @{ Authorization = "Bearer $token" } -Uri "https://graph.microsoft.com/beta/deviceAppManagement/mobileApps"
        """,
        "h25_azure_secret",
        True,
    ),
    # ================================================================ call-centre telephony
    _t(
        "telephony/asterisk/pjsip.conf",
        """
        [transport-tls]
        type=transport
        protocol=tls
        bind=0.0.0.0:5061

        [trunk-kpn]
        type=registration
        outbound_auth=trunk-kpn-auth
        server_uri=sip:sip.trunk-provider.nl
        client_uri=sip:0851234000@sip.trunk-provider.nl

        [trunk-kpn-auth]
        type=auth
        auth_type=userpass
        username=0851234000
        password={V}

        [agent-1001]
        type=auth
        auth_type=userpass
        username=1001
        password={V2}
        """,
        "h25_sip_secret",
        True,
    ),
    _t(
        "telephony/genesys/export_queues.py",
        """
        import PureCloudPlatformClientV2 as gc

        gc.configuration.host = "https://api.mypurecloud.de"
        client = gc.api_client.ApiClient().get_client_credentials_token(
            "6f1e2d3c-0a9b-4c8d-8e7f-1a2b3c4d5e6f",
            "{V}",
        )
        routing = gc.RoutingApi(client)
        for q in routing.get_routing_queues(page_size=100).entities:
            print(q.name, q.member_count)
        """,
        "h25_client_secret",
        True,
    ),
    _t(
        "telephony/recordings/sync-to-s3.sh",
        """
        #!/usr/bin/env bash
        # Copies call recordings older than 1 day from the Asterisk box to S3 (retention 90 days).
        set -euo pipefail
        export AWS_ACCESS_KEY_ID={V}
        export AWS_SECRET_ACCESS_KEY={V2}
        export AWS_DEFAULT_REGION=eu-west-1

        find /var/spool/asterisk/monitor -name '*.wav' -mtime +1 -print0 |
          xargs -0 -I{} aws s3 mv {} s3://vwp-call-recordings/$(hostname)/ --sse aws:kms
        """,
        "h25_aws_key",
        True,
    ),
    _t(
        "telephony/cdr/cdr-sample-2024-10-07.csv",
        """
        "uniqueid","src","dst","dcontext","disposition","billsec","linkedid"
        "{V}","0612345678","4000","ivr-storing","ANSWERED",184,"{V}"
        "{V2}","0201234567","4000","ivr-storing","ANSWERED",62,"{V2}"
        "{V3}","0031612345","4100","ivr-facturen","NO ANSWER",0,"{V3}"
        """,
        "h25_call_id",
        False,
    ),
    _t(
        "telephony/wallboard/README.md",
        """
        # Wallboard

        Shows queue statistics of the call centre on the TVs in the KCC.

        ## Local development

        ```bash
        export WALLBOARD_DB="{V}"
        export GENESYS_API="{V2}"
        npm run dev
        ```

        Both hosts above are documentation placeholders; ask the KCC team for access to the test tenant.
        """,
        "h25_doc_uri",
        False,
    ),
    # ================================================================ IT infrastructure
    _t(
        "infra/ansible/inventories/prod/group_vars/windows.yml",
        """
        ansible_user: VWP\\svc-ansible
        ansible_password: {V}
        ansible_connection: winrm
        ansible_winrm_transport: kerberos
        ansible_winrm_server_cert_validation: ignore
        ad_domain: vwp.lan
        ad_join_user: svc-domainjoin
        ad_join_password: {V2}
        """,
        "h25_pw",
        True,
    ),
    _t(
        "infra/ansible/inventories/prod/group_vars/all/vault.yml",
        """
        vault_ad_join_password: !vault |
          {IV}
        vault_zabbix_db_password: !vault |
          {IV2}
        """,
        "h25_ansible_vault",
        False,
    ),
    _t(
        "infra/ad/New-ServiceAccounts.ps1",
        """
        # Creates the service accounts for the 2024 HES migration (run once on DC01)
        Import-Module ActiveDirectory
        $ou = "OU=Service,OU=AMI,DC=vwp,DC=lan"
        $accounts = @(
            @{ Name = "svc-hes-ingest"; Pw = "{V}" },
            @{ Name = "svc-mdm-etl";    Pw = "{V2}" },
            @{ Name = "svc-hes-report"; Pw = "{V3}" }
        )
        foreach ($a in $accounts) {
            New-ADUser -Name $a.Name -Path $ou -Enabled $true -PasswordNeverExpires $true `
                -AccountPassword (ConvertTo-SecureString $a.Pw -AsPlainText -Force)
        }
        """,
        "h25_pw",
        True,
    ),
    _t(
        "infra/ad/Reset-ShiftAccounts.ps1",
        """
        # Resets the shared control-room accounts at the start of the season (approved by CISO, 2023)
        $shared = "wachtdienst01", "wachtdienst02", "controlroom-pc1"
        foreach ($s in $shared) {
            Set-ADAccountPassword -Identity $s -Reset -NewPassword (ConvertTo-SecureString "{V}" -AsPlainText -Force)
            Set-ADUser -Identity $s -ChangePasswordAtLogon $false
        }
        """,
        "h25_weak_pw",
        True,
    ),
    _t(
        "infra/idrac/racadm-bulk.sh",
        """
        #!/bin/bash
        # Sets NTP and syslog on all iDRACs of the OT server rack (R640 x6).
        # iDRACs still have the factory login, see RISK-112.
        for ip in 10.70.0.{11..16}; do
          racadm -r "$ip" -u root -p {V} set iDRAC.NTPConfigGroup.NTP1 ntp.ot.vwp.lan
          racadm -r "$ip" -u root -p {V} set iDRAC.SysLog.Server1 syslog.ot.vwp.lan
        done
        """,
        "h25_idrac_pw",
        True,
    ),
    _t(
        "infra/backup/restic/restic-hist.env",
        """
        RESTIC_REPOSITORY=s3:https://s3.vwp.lan/backup-historian
        RESTIC_PASSWORD="{V}"
        RESTIC_COMPRESSION=max
        """,
        "h25_passphrase",
        True,
    ),
    _t(
        "infra/ldap/ot-directory/users.ldif",
        """
        dn: uid=operator01,ou=people,dc=ot,dc=vwp,dc=lan
        objectClass: inetOrgPerson
        uid: operator01
        cn: Operator 01
        sn: Operator
        userPassword:: {V}

        dn: uid=engineer01,ou=people,dc=ot,dc=vwp,dc=lan
        objectClass: inetOrgPerson
        uid: engineer01
        cn: Engineer 01
        sn: Engineer
        userPassword:: {V2}
        """,
        "h25_ssha_ldif",
        False,
    ),
    _t(
        "infra/network/radius/clients.conf",
        """
        client ot-switches {
            ipaddr = 10.61.0.0/16
            secret = {V}
            shortname = ot-sw
            nas_type = cisco
        }

        client wifi-depots {
            ipaddr = 10.80.0.0/16
            secret = {V2}
        }
        """,
        "h25_net_key",
        True,
    ),
    _t(
        "infra/network/wifi/hostapd-depot-nieuwegein.conf",
        """
        interface=wlan0
        driver=nl80211
        ssid=VWP-Depot
        hw_mode=a
        channel=36
        wpa=2
        wpa_key_mgmt=WPA-PSK
        rsn_pairwise=CCMP
        wpa_passphrase={V}
        """,
        "h25_wifi_psk",
        True,
    ),
    _t(
        "infra/pki/ca/vwp-ot-ca-chain.pem",
        """
        # VWP OT issuing CA + root (public, distribute to every OT client)
        {V}
        {V2}
        """,
        "h25_cert",
        False,
    ),
    _t(
        "infra/pki/issued/hes-gw01.vwp.lan.key",
        """
        {V}
        """,
        "h25_pkcs8_key",
        True,
    ),
    _t(
        "infra/pki/issued/hes-gw01.vwp.lan.pub.pem",
        """
        {V}
        """,
        "h25_pubkey",
        False,
    ),
    _t(
        "infra/ssh/jump01/id_ed25519_ansible",
        """
        {V}
        """,
        "h25_openssh",
        True,
    ),
    _t(
        "infra/ssh/jump01/authorized_keys",
        """
        # managed by ansible (role: jump-host)
        {V}
        {V2}
        {V3}
        """,
        "h25_ssh_pub",
        False,
    ),
    _t(
        "infra/monitoring/alertmanager/alertmanager.yml",
        """
        global:
          resolve_timeout: 5m
          slack_api_url: '{V}'

        route:
          receiver: ot-slack
          group_by: [alertname, site]
          routes:
            - matchers: [severity="critical"]
              receiver: ot-slack

        receivers:
          - name: ot-slack
            slack_configs:
              - channel: '#ot-alerts'
                send_resolved: true
        """,
        "h25_webhook_slack",
        True,
    ),
    _t(
        "infra/monitoring/alertmanager/pagerduty.yml",
        """
        receivers:
          - name: pd-storingsdienst
            pagerduty_configs:
              - routing_key: {V}
                severity: critical
          - name: pd-ict
            pagerduty_configs:
              - routing_key: {V2}
        """,
        "h25_pd_key",
        True,
    ),
    _t(
        "infra/monitoring/datadog/datadog.yaml",
        """
        api_key: {V}
        site: datadoghq.eu
        hostname_fqdn: true
        tags:
          - env:prod
          - team:it-infra
        logs_enabled: true
        process_config:
          process_collection:
            enabled: true
        """,
        "h25_datadog",
        True,
    ),
    _t(
        "infra/monitoring/grafana/backup_dashboards.sh",
        """
        #!/usr/bin/env bash
        set -euo pipefail
        GRAFANA=https://grafana.vwp.lan
        TOKEN="{V}"
        mkdir -p dashboards
        for uid in $(curl -sf -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/search?type=dash-db" | jq -r '.[].uid'); do
          curl -sf -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/dashboards/uid/$uid" > "dashboards/$uid.json"
        done
        """,
        "h25_grafana",
        True,
    ),
    _t(
        "infra/monitoring/grafana/provisioning/dashboards/links.yaml",
        """
        # Dashboard uids referenced from the wall displays in the control room
        control_room:
          - title: Pumpstations overview
            uid: {V}
          - title: HES collection rate
            uid: {V2}
          - title: MV feeders
            uid: {V3}
        datasource_uid: {V4}
        """,
        "h25_grafana_uid",
        False,
    ),
    _t(
        "infra/monitoring/newrelic/provider.tf",
        """
        terraform {
          required_providers {
            newrelic = {
              source  = "newrelic/newrelic"
              version = "~> 3.30"
            }
          }
        }

        provider "newrelic" {
          account_id = 3456789
          api_key    = "{V}" # user key of svc-terraform
          region     = "EU"
        }
        """,
        "h25_newrelic",
        True,
    ),
]
TEMPLATES += [
    # ================================================================ CI/CD
    _t(
        "portal/mijn-vwp/.gitlab-ci.yml",
        """
        stages: [test, build, deploy]

        variables:
          DOCKER_TLS_CERTDIR: "/certs"

        test:
          stage: test
          image: php:8.3-cli
          script:
            - composer install --no-interaction
            - vendor/bin/phpunit

        deploy-prod:
          stage: deploy
          image: alpine/git
          script:
            - git clone https://oauth2:{V}@gitlab.vwp.lan/platform/gitops-portal.git
            - cd gitops-portal && ./bump.sh mijn-vwp "$CI_COMMIT_SHORT_SHA"
          rules:
            - if: $CI_COMMIT_BRANCH == "main"
        """,
        "h25_gitlab",
        True,
    ),
    _t(
        "ami/mdm/.gitlab-ci.yml",
        """
        build-image:
          stage: build
          image: docker:27
          services: [docker:27-dind]
          script:
            - echo "{V}" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
            - docker build -t "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA" .
            - docker push "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"

        migrate:
          stage: deploy
          script:
            - sqlcmd -S sql-mdm-02.vwp.lan -U mdm_migrate -P "{V2}" -i migrations/pending.sql
        """,
        "h25_ref_ci",
        False,
    ),
    _t(
        "oms/.github/workflows/deploy.yml",
        """
        name: deploy-oms
        on:
          push:
            branches: [main]

        env:
          GH_TOKEN: {V}

        jobs:
          deploy:
            runs-on: [self-hosted, oms]
            steps:
              - uses: actions/checkout@v4
              - run: gh release download --repo vwp-utility/oms-config --pattern 'config-*.tar.gz'
              - run: ./scripts/deploy.sh
        """,
        "h25_github",
        True,
    ),
    _t(
        "field-app/.github/workflows/build-android.yml",
        """
        name: build-android
        on: [push]
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: actions/setup-java@v4
                with: { distribution: temurin, java-version: '17' }
              - name: Decode keystore
                run: echo "${KEYSTORE_B64}" | base64 -d > android/keystores/vwp-werkbon-upload.jks
                env:
                  KEYSTORE_B64: {V}
              - name: Build
                run: ./gradlew bundleRelease
                env:
                  STORE_PASSWORD: {V2}
                  KEY_PASSWORD: {V3}
        """,
        "h25_ref_gha",
        False,
    ),
    _t(
        "scada/historian/export/Jenkinsfile",
        """
        pipeline {
            agent { label 'ot-build' }
            triggers { cron('H 2 * * *') }
            stages {
                stage('Export') {
                    steps {
                        sh 'python3 export_daily.py --out out/'
                    }
                }
                stage('Publish') {
                    steps {
                        sh "curl -sf -u historian-export:{V} -T out/daily.csv https://nexus.vwp.lan/repository/ot-exports/"
                    }
                }
            }
        }
        """,
        "h25_pw",
        True,
    ),
    _t(
        "ci/jenkins/credentials.xml",
        """
        <?xml version='1.1' encoding='UTF-8'?>
        <com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1337.v60b_d7b_c7b_c9f">
          <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
            <entry>
              <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
              <java.util.concurrent.CopyOnWriteArrayList>
                <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                  <id>nexus-historian-export</id>
                  <username>historian-export</username>
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
        "h25_jenkins_enc",
        False,
    ),
    _t(
        "field-app/react-native/.npmrc",
        """
        @vwp:registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        save-exact=true
        """,
        "h25_npm",
        True,
    ),
    _t(
        "gis/tools/vwp-gis-utils/.pypirc",
        """
        [distutils]
        index-servers =
            pypi
            nexus

        [pypi]
        username = __token__
        password = {V}

        [nexus]
        repository = https://nexus.vwp.lan/repository/pypi-internal/
        username = gis-release
        """,
        "h25_pypi",
        True,
    ),
    _t(
        "ci/runner/.docker/config.json",
        """
        {
          "auths": {
            "registry.vwp.lan": {
              "auth": "{V}"
            },
            "https://index.docker.io/v1/": {
              "auth": "{V2}"
            }
          },
          "credsStore": ""
        }
        """,
        "h25_basic_b64",
        True,
    ),
    _t(
        "ci/runner/bootstrap-runner.sh",
        """
        #!/usr/bin/env bash
        # Bootstrap of the OT build runner (air-gapped except for Docker Hub pulls via proxy)
        set -euo pipefail
        apt-get install -y docker-ce docker-ce-cli containerd.io
        echo "{V}" | docker login -u vwputility --password-stdin
        docker pull python:3.12-slim
        docker pull node:20-alpine
        """,
        "h25_docker_pat",
        True,
    ),
    _t(
        "platform/argocd/repos/gitops-portal-repo.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: repo-gitops-portal
          namespace: argocd
          labels:
            argocd.argoproj.io/secret-type: repository
        stringData:
          type: git
          url: https://github.com/vwp-utility/gitops-portal
          username: vwp-argocd
          password: {V}
        """,
        "h25_github_fine",
        True,
    ),
    _t(
        "portal/mijn-vwp/package-lock.json",
        """
        {
          "name": "mijn-vwp",
          "version": "2024.10.3",
          "lockfileVersion": 3,
          "requires": true,
          "packages": {
            "node_modules/@stripe/stripe-js": {
              "version": "4.8.0",
              "resolved": "https://registry.npmjs.org/@stripe/stripe-js/-/stripe-js-4.8.0.tgz",
              "integrity": "{V}"
            },
            "node_modules/axios": {
              "version": "1.7.7",
              "resolved": "https://registry.npmjs.org/axios/-/axios-1.7.7.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
        "h25_sri",
        False,
    ),
    _t(
        "oms/sonar-project.properties",
        """
        sonar.projectKey=vwp_oms
        sonar.projectName=OMS
        sonar.host.url=https://sonar.vwp.lan
        sonar.token={V}
        sonar.sources=src
        sonar.exclusions=**/generated/**
        """,
        "h25_sonar",
        True,
    ),
    _t(
        "ami/hes-adapter/Dockerfile",
        """
        FROM python:3.12-slim@{V}
        ARG PIP_INDEX_URL
        WORKDIR /app
        COPY requirements.txt .
        RUN pip install --no-cache-dir -r requirements.txt
        COPY src/ src/
        # build provenance, see SLSA attestation in the registry
        LABEL org.opencontainers.image.revision="{V2}"
        USER 10001
        CMD ["python", "-m", "src.main"]
        """,
        "h25_build_ref",
        False,
    ),
    _t(
        "billing/cis-batch/Dockerfile",
        """
        FROM oraclelinux:8-slim
        RUN microdnf install -y oracle-instantclient-sqlplus && microdnf clean all
        ENV ORACLE_SID=CISPRD \\
            CIS_BATCH_USER=cis_batch \\
            CIS_BATCH_PASSWORD={V}
        COPY bin/ /opt/cis/bin/
        COPY sql/ /opt/cis/sql/
        ENTRYPOINT ["/opt/cis/bin/run_bill_print.sh"]
        """,
        "h25_pw",
        True,
    ),
    _t(
        "platform/azure-pipelines/selfservice-api.yml",
        """
        trigger:
          branches:
            include: [main]

        pool:
          vmImage: ubuntu-latest

        variables:
          NUGET_FEED: https://pkgs.dev.azure.com/vwp-utility/_packaging/vwp-internal/nuget/v3/index.json

        steps:
          - script: |
              dotnet nuget add source "$(NUGET_FEED)" --name vwp-internal \\
                --username build --password {V} --store-password-in-clear-text
              dotnet restore
              dotnet test --no-restore
            displayName: Restore and test
        """,
        "h25_azdo_pat",
        True,
    ),
    _t(
        "platform/renovate/config.js",
        """
        module.exports = {
          platform: 'gitlab',
          endpoint: 'https://gitlab.vwp.lan/api/v4/',
          token: {V},
          hostRules: [
            {
              matchHost: 'registry.npmjs.org',
              token: {V2},
            },
          ],
          repositories: ['platform/gitops-portal', 'ami/mdm', 'oms/oms-core'],
        };
        """,
        "h25_ref_js",
        False,
    ),
    # ================================================================ cloud
    _t(
        "platform/terraform/azure/providers.tf",
        """
        terraform {
          required_providers {
            azurerm = {
              source  = "hashicorp/azurerm"
              version = "~> 3.110"
            }
          }
        }

        provider "azurerm" {
          features {}
          subscription_id = "9b1c3e57-2d84-4f0a-a6b9-7e5c1d3f0a28"
          tenant_id       = "e4d7a1c2-8b3f-4e6d-9a05-1c2b3d4e5f60"
          client_id       = "0f2e4d6c-8a1b-4c3d-9e5f-6a7b8c9d0e1f"
          client_secret   = "{V}"
        }
        """,
        "h25_azure_secret",
        True,
    ),
    _t(
        "platform/terraform/azure/terraform.tfvars",
        """
        location        = "westeurope"
        tenant_id       = "{V}"
        subscription_id = "{V2}"
        # object ids of the groups that get Key Vault access
        kv_admins_group = "{V3}"
        ot_readers      = "{V4}"
        """,
        "h25_uuid",
        False,
    ),
    _t(
        "platform/aws/credentials",
        """
        [default]
        region = eu-west-1

        [vwp-recordings]
        aws_access_key_id = {V}
        aws_secret_access_key = {V2}

        [vwp-meter-alerts]
        aws_access_key_id = {V3}
        aws_secret_access_key = {V4}
        """,
        "h25_aws_key",
        True,
    ),
    _t(
        "platform/docs/aws-cli-setup.md",
        """
        # AWS CLI setup for developers

        Use SSO (`aws configure sso`); static keys are only for the break-glass user.
        The format of `~/.aws/credentials`, with AWS's documented example values:

        ```ini
        [example]
        aws_access_key_id = {V}
        aws_secret_access_key = {V2}
        ```
        """,
        "h25_aws_doc",
        False,
    ),
    _t(
        "platform/aws/iam/meter-alerts-policy.json",
        """
        {
          "Version": "2012-10-17",
          "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "{V}"},
            {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "{V2}"},
            {"Effect": "Allow", "Action": ["sns:Publish"], "Resource": "{V3}"}
          ]
        }
        """,
        "h25_arn",
        False,
    ),
    _t(
        "platform/terraform/gcp/keys/sa-vwp-forecast.json",
        """
        {
          "type": "service_account",
          "project_id": "vwp-demand-forecast",
          "private_key": "{V}",
          "client_email": "forecast-runner@vwp-demand-forecast.iam.gserviceaccount.com",
          "client_id": "104857392011846523017",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
        "h25_gcp_sa",
        True,
    ),
    _t(
        "platform/azure/functions/meter-alerts/local.settings.json",
        """
        {
          "IsEncrypted": false,
          "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated",
            "AzureWebJobsStorage": "{V}",
            "ArchiveStorage": "{V2}"
          }
        }
        """,
        "h25_azure_storage",
        True,
    ),
    _t(
        "platform/azure/functions/meter-alerts/local.settings.sample.json",
        """
        {
          "IsEncrypted": false,
          "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated",
            "AzureWebJobsStorage": "{V}",
            "BlobArchive": "{V2}"
          }
        }
        """,
        "h25_azurite",
        False,
    ),
    _t(
        "platform/azure/servicebus/OutageEventPublisher.cs",
        """
        using Azure.Messaging.ServiceBus;

        namespace Vwp.Integration;

        public sealed class OutageEventPublisher : IAsyncDisposable
        {
            // connection string of the 'send-oms' policy on topic oms-outages
            private const string ConnectionString = "{V}";
            private readonly ServiceBusClient _client = new(ConnectionString);

            public async Task PublishAsync(string incidentId, string json)
            {
                await using var sender = _client.CreateSender("oms-outages");
                await sender.SendMessageAsync(new ServiceBusMessage(json) { MessageId = incidentId });
            }

            public ValueTask DisposeAsync() => _client.DisposeAsync();
        }
        """,
        "h25_azure_sb",
        True,
    ),
    _t(
        "platform/vault/agent-bootstrap.sh",
        """
        #!/bin/sh
        # First boot of the OT vault agent; token is a one-off periodic token (policy: ot-agent)
        export VAULT_ADDR=https://vault.vwp.lan:8200
        export VAULT_TOKEN={V}
        vault kv get -field=password kv/ot/historian > /run/secrets/historian
        exec vault agent -config=/etc/vault.d/agent.hcl
        """,
        "h25_vault",
        True,
    ),
    _t(
        "platform/secrets/oms.enc.yaml",
        """
        oms:
            db_password: {V}
            ivr_api_key: {V2}
            twilio_auth_token: {V3}
        sops:
            kms: []
            azure_kv:
                - vault_url: https://kv-vwp-prod.vault.azure.net
                  name: sops-oms
                  version: 2f9d1a7c0b3e4d5f8a6b9c0d1e2f3a4b
                  created_at: "2024-08-19T09:12:44Z"
            lastmodified: "2024-08-19T09:12:45Z"
            version: 3.8.1
        """,
        "h25_sops",
        False,
    ),
    # ================================================================ runbooks (EN / NL / PT)
    _t(
        "runbooks/en/historian-failover.md",
        """
        # Runbook: PI historian failover (PIDA-01 -> PIDA-02)

        **When:** PIDA-01 unreachable for more than 10 minutes, or the control room reports flat lines.

        1. RDP to `HIST-APP02` as the local admin (`.\\hist-admin` / `{V}`).
        2. Open *PI System Management Tools* > *Collectives* and promote PIDA-02.
        3. Restart the interfaces on `OPC-IF01`:
           ```
           sc \\\\OPC-IF01 stop opcint1 && sc \\\\OPC-IF01 start opcint1
           ```
        4. Check the buffer: `pibufss -cfg`. The PI Web API service account password is `{V2}`
           if the web API needs to be re-bound.
        5. Inform the control room (ext. 4000) and log the event in ServiceNow.
        """,
        "h25_pw",
        True,
    ),
    _t(
        "runbooks/en/credential-rotation.md",
        """
        # Credential rotation

        All service credentials are rotated every 180 days by the PAM workflow. Manual steps only
        for systems without a connector:

        | System | Where it is stored | Value in this document |
        |--------|--------------------|------------------------|
        | Asterisk trunk | CyberArk `Telephony/Trunk` | `{V}` |
        | HES API key | Key Vault `kv-vwp-prod/hes-api-key` | `{V2}` |
        | SEL relays (level 2) | CyberArk `OT-Relays` | `{V3}` |

        Never paste the new value into tickets or chat.
        """,
        "h25_placeholder",
        False,
    ),
    _t(
        "runbooks/nl/storingsdienst-toegang.md",
        """
        # Toegang voor de storingsdienst (buiten kantooruren)

        Bij een grote storing moet de dienstdoende monteur zelf in kunnen loggen op de systemen
        hieronder. Gebruik deze accounts alleen bij calamiteiten en meld het gebruik achteraf.

        | Systeem | Gebruiker | Wachtwoord |
        |---------|-----------|------------|
        | OMS noodconsole | `oms-nood` | `{V}` |
        | Ignition (alleen lezen) | `wacht-ro` | `{V2}` |
        | Gemaal PS014 HMI | `operator` | `{V3}` |

        Na gebruik: wachtwoord laten wijzigen via de ICT-servicedesk (toestel 4400).
        """,
        "h25_pw",
        True,
    ),
    _t(
        "runbooks/nl/sleutelbeheer-slimme-meters.md",
        """
        # Sleutelbeheer slimme meters

        De DLMS-sleutels (GUEK, GAK) staan uitsluitend in de HSM. In documenten en tickets
        noteren we alleen de sleutelcontrolewaarde (KCV):

        * meterbatch 2291, GUEK: KCV `{V}`
        * meterbatch 2291, GAK: KCV `{V2}`
        * meterbatch 2305, GUEK: KCV `{V3}`

        Een KCV is geen geheim: de eerste drie bytes van de versleuteling van een nulblok.
        """,
        "h25_kcv",
        False,
    ),
    _t(
        "runbooks/nl/nieuwe-medewerker-kcc.md",
        """
        # Nieuwe medewerker klantcontactcentrum (KCC)

        1. Het account wordt aangemaakt door HR-onboarding; het tijdelijke wachtwoord is
           `{V}` en moet bij de eerste aanmelding gewijzigd worden.
        2. Genesys-licentie aanvragen via het formulier *KCC-toegang*.
        3. Softphone: extensie wordt door telefonie toegewezen.
        """,
        "h25_weak_pw",
        True,
    ),
    _t(
        "runbooks/nl/vpn-leverancier-instellen.md",
        """
        # VPN voor leveranciers instellen

        Vul in het FortiClient-profiel de volgende gegevens in:

        * Gateway: `vpn-ot.vwp-utility.nl`
        * Gebruikersnaam: je leveranciersaccount
        * Wachtwoord: `{V}`
        * Pre-shared key: `{V2}`

        Vraag de echte waarden op bij het OT-securityteam; ze worden nooit per e-mail verstuurd.
        """,
        "h25_placeholder",
        False,
    ),
    _t(
        "runbooks/pt/acesso-subestacao-norte.md",
        """
        # Acesso à subestação SS-NORTH (equipe de manutenção terceirizada)

        ## Antes de ir ao local

        * Solicite a liberação no centro de operação (ramal 4000).
        * Leve o notebook de engenharia com o AcSELerator instalado.

        ## Relés SEL-751

        Conecte na porta frontal. Nível 1: usuário `ACC`, senha `{V}`.
        Nível 2: usuário `2AC`, senha `{V2}`.

        Ao terminar, registre o acesso no livro da subestação.
        """,
        "h25_sel_pw",
        True,
    ),
    _t(
        "runbooks/pt/ura-configuracao.md",
        """
        # Configuração da URA em português

        O tronco SIP para o atendimento em português usa a conta `0851234010`.
        A senha SIP do tronco é `{V}` (cadastrada no Asterisk em `pjsip.conf`).
        Para os agentes remotos no Brasil, a senha do ramal 1201 é `{V2}`.
        """,
        "h25_sip_secret",
        True,
    ),
    _t(
        "runbooks/pt/politica-de-senhas.md",
        """
        # Política de senhas para equipes de campo

        * Tamanho mínimo da senha: {V} caracteres
        * Troca obrigatória a cada {V2} dias
        * Bloqueio após {V3} tentativas inválidas

        Nunca escreva a senha neste documento. Exemplo de preenchimento no formulário:
        `senha: <sua senha aqui>`.
        """,
        "h25_policy",
        False,
    ),
    # ================================================================ chat exports
    _t(
        "chat/slack-export/ot-ops/2024-03-14.json",
        """
        [
            {
                "type": "message",
                "user": "U04K8P2QZ1M",
                "text": "PS022 gateway won't accept the new cert, can someone log in to the Moxa and check?",
                "ts": "1710412245.112900"
            },
            {
                "type": "message",
                "user": "U03R7H5TL2C",
                "text": "logged in as admin with `{V}` - cert is there but expired chain. fixing",
                "ts": "1710412460.113209"
            },
            {
                "type": "message",
                "user": "U04K8P2QZ1M",
                "text": "thanks! also the historian odbc pw changed, new one is {V2} (rotate after the weekend)",
                "ts": "1710412733.114002"
            }
        ]
        """,
        "h25_pw",
        True,
    ),
    _t(
        "chat/slack-export/portal-dev/2024-09-02.json",
        """
        [
            {
                "type": "message",
                "user": "U05B1N9XK3D",
                "text": "stripe webhook failing in prod again :(",
                "ts": "1725265001.000100"
            },
            {
                "type": "message",
                "user": "U02M4T7VQ8E",
                "text": "I rotated the live key, here it is until vault sync works: {V}",
                "ts": "1725265187.000200"
            }
        ]
        """,
        "h25_stripe",
        True,
    ),
    _t(
        "chat/teams-export/storingsdienst-2024-11.txt",
        """
        [05-11-2024 02:14] Kees Bosman: Gemaal PS014 valt steeds uit, ik kan niet inloggen op de HMI
        [05-11-2024 02:16] Meldkamer Nacht: Probeer gebruiker operator met wachtwoord {V}
        [05-11-2024 02:19] Kees Bosman: Werkt, dank. Pomp 2 staat op storing thermisch.
        [05-11-2024 02:31] Meldkamer Nacht: Oké, ik zet een werkorder klaar voor de dagdienst.
        """,
        "h25_vendor_pw",
        True,
    ),
    _t(
        "chat/teams-export/kcc-brasil-2024-10.txt",
        """
        [14/10/2024 09:02] Ana Ribeiro: Bom dia! Alguém sabe o login do painel do wallboard?
        [14/10/2024 09:05] Lucas Martins: usuário: wallboard / senha: {V}
        [14/10/2024 09:06] Ana Ribeiro: Valeu!
        [14/10/2024 09:40] Lucas Martins: E o token da API do Genesys para o relatório é {V2}
        """,
        "h25_client_secret",
        True,
    ),
    _t(
        "chat/mattermost-export/it-infra-2024-07.jsonl",
        """
        {"create_at": 1720080000000, "user": "m.visser", "message": "rotated the zabbix DB password, new value: {V}"}
        {"create_at": 1720080060000, "user": "dlp-bot", "message": "A message in this channel contained a secret and was redacted: {V2}"}
        {"create_at": 1720080120000, "user": "j.smit", "message": "thanks, updated in the vault ({V3})"}
        """,
        "h25_masked",
        False,
    ),
    # ================================================================ tickets
    _t(
        "tickets/jira/OMS-1423.md",
        """
        # OMS-1423 Crew app gets 401 from /v2/incidents after token refresh

        **Reporter:** r.bakker  **Priority:** High  **Component:** crew-dispatch

        Steps to reproduce (token copied from the device log):

        ```
        curl -i https://oms-api.vwp.lan/v2/incidents?state=open \\
          -H "Authorization: Bearer {V}"
        ```

        Returns `401 invalid_token`, while the same token works against `/v2/crews`.
        """,
        "h25_jwt",
        True,
    ),
    _t(
        "tickets/servicenow/INC0042317.txt",
        """
        Number: INC0042317
        Short description: Mijn VWP - customer sees another customer's invoices
        Assignment group: Portal DevOps
        Priority: 1 - Critical

        Work notes (2024-10-02 11:48, T. Mulder):
        Reproduced with the customer's browser session from the HAR file:
          GET /api/invoices HTTP/2
          Host: mijn.vwp-utility.nl
          Cookie: {V}
        Response contains invoices of account 1000381120. Escalated to security.
        """,
        "h25_session_cookie",
        True,
    ),
    _t(
        "tickets/servicenow/INC0042455.txt",
        """
        Number: INC0042455
        Short description: HES collection rate below 95% for feeder SS-NORTH F4
        sys_id: {V}
        Configuration item: HES-GW01 (sys_id {V2})
        Related problem: PRB0004121 (sys_id {V3})
        State: In Progress
        Work notes: Concentrator DC-NORTH-01 rebooted, rates recovering.
        """,
        "h25_hex32_id",
        False,
    ),
    _t(
        "tickets/jira/GIS-882.md",
        """
        # GIS-882 FME job fails with 401 since Monday

        Log excerpt from the Airflow task:

        ```
        [2024-06-10 02:00:13] POST https://fme.vwp.lan/fmerest/v3/transformations/submit/VWP_Network/network_extract.fmw
        [2024-06-10 02:00:13] Authorization: fmetoken token={V}
        [2024-06-10 02:00:14] HTTP 401 Unauthorized
        ```

        Token expired? It was created 2023-06-09 with 1 year validity.
        """,
        "h25_fme_token",
        True,
    ),
    _t(
        "tools/jira-sync/sync.py",
        """
        \"\"\"Copies ServiceNow major incidents into the Jira OMS project (for the post-mortems).\"\"\"

        import requests
        from requests.auth import HTTPBasicAuth

        JIRA = "https://vwp-utility.atlassian.net"
        AUTH = HTTPBasicAuth("svc-jira-sync@vwp-utility.nl", "{V}")


        def create_issue(summary: str, description: str) -> str:
            r = requests.post(
                f"{JIRA}/rest/api/3/issue",
                json={"fields": {"project": {"key": "OMS"}, "summary": summary, "issuetype": {"name": "Task"},
                                 "description": description}},
                auth=AUTH,
                timeout=30,
            )
            r.raise_for_status()
            return r.json()["key"]
        """,
        "h25_atlassian",
        True,
    ),
    _t(
        "tools/slack-bot/storingsbot.py",
        """
        import os

        from slack_bolt import App

        app = App(token="{V}", signing_secret=os.environ["SLACK_SIGNING_SECRET"])


        @app.command("/storing")
        def storing(ack, respond, command):
            ack()
            respond(f"Storing {command['text']} wordt opgezocht in OMS...")
        """,
        "h25_slack_bot",
        True,
    ),
    # ================================================================ HTTP client files, notebooks
    _t(
        "ami/hes-adapter/http/hes.http",
        """
        ### On-demand read of a single meter
        POST https://hes-gw.vwp.lan/api/v3/meters/LGZ910022910/reads
        Content-Type: application/json
        X-Api-Key: {V}

        {"registers": ["1.8.0", "2.8.0"], "priority": "high"}

        ### Relay status
        GET https://hes-gw.vwp.lan/api/v3/meters/LGZ910022910/relay
        X-Api-Key: {V}
        """,
        "h25_api_key",
        True,
    ),
    _t(
        "analytics/notebooks/consumption_forecast.ipynb",
        """
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# Water demand forecast per DMA (prototype)"]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "import pandas as pd\\n",
            "from sqlalchemy import create_engine\\n",
            "engine = create_engine(\\"{V}\\")\\n",
            "df = pd.read_sql('select * from mdm.daily_volume_dma', engine)"
           ]
          }
         ],
         "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h25_db_url",
        True,
    ),
    _t(
        "analytics/notebooks/meter_anomaly.ipynb",
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "import os, keyring\\n",
            "from decouple import config\\n",
            "pw = {V}\\n",
            "api_key = {V2}\\n"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h25_ref_py",
        False,
    ),
    _t(
        "analytics/notebooks/outage_kpis.ipynb",
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 7,
           "metadata": {},
           "outputs": [
            {
             "name": "stdout",
             "output_type": "stream",
             "text": ["connected to broker\\n"]
            }
           ],
           "source": [
            "from kombu import Connection\\n",
            "conn = Connection('{V}')\\n",
            "conn.ensure_connection(max_retries=3)\\n",
            "print('connected to broker')"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h25_broker_url",
        True,
    ),
    # ================================================================ late additions: Terraform refs, LoRa gateway key
    _t(
        "platform/terraform/aws/call-recordings/rds.tf",
        """
        resource "random_password" "historian" {
          length  = 32
          special = true
        }

        resource "aws_db_instance" "recordings_meta" {
          identifier          = "vwp-recordings-meta"
          engine              = "postgres"
          engine_version      = "16.3"
          instance_class      = "db.t4g.medium"
          username            = "recmeta"
          password            = {V}
          storage_encrypted   = true
          skip_final_snapshot = false
        }

        resource "aws_ssm_parameter" "hes_api_key" {
          name  = "/vwp/meter-alerts/hes-api-key"
          type  = "SecureString"
          value = {V2}
        }
        """,
        "h25_ref_tf",
        False,
    ),
    _t(
        "ami/lora/gateways/gw-ps014/certs/gw-ps014.key",
        """
        {V}
        """,
        "h25_ec_key",
        True,
    ),
    _t(
        "portal/backoffice/fixtures/staff_users.json",
        """
        [
          {
            "model": "auth.user",
            "pk": 1,
            "fields": {
              "username": "kcc-teamlead",
              "password": "{V}",
              "is_staff": true,
              "email": "kcc-teamlead@vwp-utility.nl"
            }
          },
          {
            "model": "auth.user",
            "pk": 2,
            "fields": {
              "username": "billing-review",
              "password": "{V2}",
              "is_staff": true,
              "email": "billing-review@vwp-utility.nl"
            }
          }
        ]
        """,
        "h25_pbkdf2",
        False,
    ),
    _t(
        "scada/hmi/kiosk/cloud-init/user-data.yaml",
        """
        #cloud-config
        hostname: hmi-kiosk-ps014
        users:
          - name: operator
            groups: [video, input]
            shell: /bin/bash
            lock_passwd: false
            hashed_passwd: "{V}"
          - name: vwpadmin
            groups: [sudo]
            lock_passwd: false
            hashed_passwd: "{V2}"
            ssh_authorized_keys: []
        runcmd:
          - systemctl enable --now kiosk-browser.service
        """,
        "h25_sha512crypt",
        False,
    ),
    _t(
        "portal/frontend/.env.production",
        """
        # Public, build-time values only (they end up in the JS bundle)
        VITE_API_BASE=https://api.vwp-utility.nl
        VITE_GOOGLE_CLIENT_ID={V}
        VITE_OKTA_CLIENT_ID={V2}
        VITE_OKTA_ISSUER=https://vwp-utility.okta.com/oauth2/default
        VITE_DD_RUM_CLIENT_TOKEN={V3}
        VITE_DD_SITE=datadoghq.eu
        """,
        "h25_public_id",
        False,
    ),
]
