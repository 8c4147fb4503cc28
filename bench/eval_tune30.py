"""Blind part ``tune30``: a regional telecom operator and internet service provider, Norrvik
Telecom (NVT: fibre and DSL broadband, mobile MVNO, IPTV and fixed voice across the Norrvik
region), with its wholesale partners, field contractors and vendors. Files are OSS/BSS code and
config (Java/Spring billing and order management, Oracle and PostgreSQL schemas, mediation and
rating), AAA (FreeRADIUS clients, SQL modules and users files, debug logs, freeDiameter and
Diameter peer config, TACACS+), network automation (Ansible inventories and playbooks, Nornir and
NAPALM inventories, ncclient/NETCONF scripts, Netmiko, router and switch configs for Cisco IOS-XR,
Junos and MikroTik, NetBox and Oxidized), customer self-care apps (React Native/TypeScript, Kotlin
Android Gradle builds, iOS fastlane and APNs, Node/Express BFF, Django portal), call-detail-record
pipelines (Kafka, Spark, Airflow, ClickHouse, Go and Rust collectors), the SMS gateway (Kannel,
jsmpp and smpplib SMPP binds, Jasmin), the VoIP/SIP platform (Asterisk, FreeSWITCH, Kamailio,
SIP provisioning), set-top-box provisioning and middleware, the TR-069 auto-configuration server
(GenieACS, CPE config XML), wholesale partner APIs (OpenAPI specs, partner OAuth clients, HMAC
signing, Postman collections), infra (Terraform, Kubernetes, Helm, Compose, Dockerfiles, CI for
GitLab, GitHub Actions and Jenkins), and field engineers' shell and PowerShell scripts, runbooks,
handover notes, tickets, chat exports, notebooks and logs. Written blind (without seeing the
scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: references to environment
variables and secret stores, placeholders and redactions, router password hashes (IOS type 8/9,
Junos ``$6$``), ClickHouse and database password digests, values encrypted at rest (Ansible
Vault, SOPS, sealed secrets), public material (WireGuard and SSH public keys, certificates,
Mapbox ``pk.`` tokens), identifiers shaped like secrets (IMSIs, ICCIDs, IMEIs, CPE serials,
Diameter session ids, RADIUS authenticators and SIP digest nonces in logs, Twilio account SIDs,
digests), UI text about passwords, documented example credentials and test values that say they
are fake.
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
CISCO64 = "./" + string.digits + string.ascii_uppercase + string.ascii_lowercase


class Tune30Values(evalset.Values):
    """Value generators of the tune30 part; every name starts with ``t30_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "fibre",
            "splice",
            "uplink",
            "backhaul",
            "lambda",
            "antenna",
            "handset",
            "carrier",
            "exchange",
            "cabinet",
            "trunk",
            "jumper",
            "tower",
            "beacon",
        ]
        self.users = [
            "bss_app",
            "radius",
            "mediation",
            "netops",
            "smsgw",
            "acs",
            "selfcare",
            "cdr_etl",
            "provision",
            "noc",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t30_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def t30_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t30_util_armor(self, label: str, nbytes: int) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t30_util_aws_id(self) -> str:
        return "AKIA" + self.s(16, string.ascii_uppercase + "234567")

    def t30_util_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def t30_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + "!#%^*-_=+.@"
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Nvt" + self.s(11, ALNUM) + self.pick(list("!#%$"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "_" + self.s(4, DIGITS)

    def t30_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Password123",
                    "Norrvik2024!",
                    "noc12345",
                    "Telecom1!",
                    "letmein22",
                    "Fibre2023",
                    "Qwerty!23",
                    "admin@123",
                ]
            )
        if shape == 1:
            return "Norrvik" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "$"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2025", "!", "99"])
        return (
            self.pick(["Summer", "Winter", "Spring", "Autumn", "October"])
            + str(self.rng.randrange(2019, 2026))
            + self.pick(["", "!"])
        )

    def t30_url_pw(self) -> str:
        if self.rng.randrange(2):
            return (
                self.pick(self.words).capitalize() + self.s(4, DIGITS) + self.pick(["", "x", "Q"])
            )
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.~")

    def t30_shared_secret(self) -> str:
        """RADIUS / TACACS+ shared secrets and SNMP write communities."""
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(self.rng.randrange(16, 25), ALNUM)
        if shape == 1:
            return f"nvt-{self.pick(self.words)}-{self.s(8, LOWNUM)}"
        if shape == 2:
            return self.pick(self.words).capitalize() + self.s(6, ALNUM) + self.pick(list("!#%"))
        return self.s(32, HEX)

    def t30_smpp_pw(self) -> str:
        """SMPP 3.4 passwords are at most 8 octets."""
        if self.rng.randrange(2):
            return self.s(8, ALNUM)
        return self.pick(self.words)[:4] + self.s(4, DIGITS)

    def t30_sip_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.s(12, DIGITS + string.ascii_lowercase)
        return self.s(self.rng.randrange(14, 22), ALNUM + "!#%")

    def t30_b64_basic(self) -> str:
        user = self.pick([*self.users, "partner-telia", "wholesale-api"])
        return base64.b64encode(f"{user}:{self.t30_pw()}".encode()).decode()

    def t30_b64_pw(self) -> str:
        return base64.b64encode(self.t30_pw().encode()).decode()

    # ------------------------------------------------------------------ positives: tokens
    def t30_partner_key(self) -> str:
        return "nvtw_live_" + self.s(40, ALNUM)

    def t30_hmac_secret(self) -> str:
        return self.pick([self.s(64, HEX), self.t30_util_b64(32), self.s(48, URLSAFE)])

    def t30_jwt_secret(self) -> str:
        return self.pick([self.s(64, HEX), self.t30_util_b64(48), self.s(40, ALNUM)])

    def t30_github(self) -> str:
        return self.t30_util_crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t30_npm(self) -> str:
        return self.t30_util_crc_token("npm")

    def t30_gitlab(self) -> str:
        return self.pick(["glpat-", "glpat-", "gldt-", "glrt-"]) + self.s(20, URLSAFE)

    def t30_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t30_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def t30_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://norrvik.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def t30_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t30_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t30_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 8 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def t30_google_key(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t30_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t30_mapbox_sk(self) -> str:
        head = (
            base64.b64encode(
                json.dumps(
                    {"u": "norrvik-gis", "a": self.s(25, LOWNUM)}, separators=(",", ":")
                ).encode()
            )
            .decode()
            .rstrip("=")
        )
        return f"sk.{head}.{self.s(22, URLSAFE)}"

    def t30_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t30_dd_api(self) -> str:
        return self.s(32, HEX)

    def t30_pd_routing(self) -> str:
        return self.s(32, HEX)

    def t30_netbox_token(self) -> str:
        return self.s(40, HEX)

    def t30_grafana(self) -> str:
        return f"glsa_{self.s(32, ALNUM)}_{self.s(8, HEX)}"

    def t30_azure_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t30_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        header = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        payload = part(
            {
                "sub": self.pick(self.users),
                "iss": "https://sso.norrvik-telecom.se",
                "scope": self.pick(["wholesale:order", "acs:admin", "cdr:read"]),
                "iat": 1730000000 + self.rng.randrange(10**7),
                "exp": 1830000000 + self.rng.randrange(10**7),
            }
        )
        return f"{header}.{payload}.{self.t30_util_b64(32, urlsafe=True, pad=False)}"

    def t30_aws_env_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID={self.t30_util_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY={self.t30_util_aws_secret()}"
        )

    def t30_aws_ini_pair(self) -> str:
        return (
            f"aws_access_key_id = {self.t30_util_aws_id()}\n"
            f"aws_secret_access_key = {self.t30_util_aws_secret()}"
        )

    def t30_wg_private(self) -> str:
        raw = bytearray(self.rng.randbytes(32))
        raw[0] &= 248
        raw[31] = (raw[31] & 127) | 64
        return base64.b64encode(bytes(raw)).decode()

    def t30_rsa_pem(self) -> str:
        return self.t30_util_armor("RSA PRIVATE KEY", 48 * 25)

    def t30_pkcs8_pem(self) -> str:
        return self.t30_util_armor("PRIVATE KEY", 48 * 26)

    def t30_ec_pem(self) -> str:
        return self.t30_util_armor("EC PRIVATE KEY", 121)

    def t30_p8_key(self) -> str:
        return self.t30_util_armor("PRIVATE KEY", 138)

    def t30_openssh_key(self) -> str:
        return self.t30_util_armor("OPENSSH PRIVATE KEY", 300)

    def t30_docker_auth(self) -> str:
        user = self.pick(["nvt-ci", "robot$stb-builder", "deploy"])
        return base64.b64encode(f"{user}:{self.t30_pw()}".encode()).decode()

    def t30_genie_jwt_secret(self) -> str:
        return self.s(self.rng.randrange(32, 48), ALNUM)

    # ------------------------------------------------------------------ negatives
    def t30_env_ref(self) -> str:
        return self.pick(
            [
                "${RADIUS_SECRET}",
                "${SMPP_PASSWORD}",
                "${DB_PASSWORD:?unset}",
                "$(cat /run/secrets/sip_password)",
                "${env:NETOPS_PASSWORD}",
                "%(ENV_ACS_PASSWORD)s",
                "${vault:secret/data/noc/tacacs#key}",
                "{{ lookup('env', 'NET_PASSWORD') }}",
            ]
        )

    def t30_yaml_ref(self) -> str:
        return self.pick(
            [
                "${BSS_DB_PASSWORD}",
                "{{ vault_radius_secret }}",
                "${SMSGW_SMPP_PASSWORD:}",
                "!vault ansible_become_pass",
                "{{ .Values.sip.password }}",
                "${{ secrets.PARTNER_API_KEY }}",
                "${ACS_CR_PASSWORD}",
            ]
        )

    def t30_code_ref(self) -> str:
        return self.pick(
            [
                'os.environ["NETOPS_PASSWORD"]',
                'os.getenv("SMPP_PASSWORD")',
                "process.env.PARTNER_API_KEY",
                'System.getenv("BSS_DB_PASSWORD")',
                'os.Getenv("CDR_KAFKA_PASSWORD")',
                'std::env::var("RADIUS_SECRET")?',
                'ENV.fetch("ACS_PASSWORD")',
                "settings.SMPP_PASSWORD",
                "cfg.Radius.Secret",
            ]
        )

    def t30_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["NETOPS_PASSWORD"]',
                'os.getenv("SMPP_PASSWORD", "")',
                'os.environ.get("CH_PASSWORD")',
                'keyring.get_password("nvt-noc", "netops")',
                'hvac_client.secrets.kv.read_secret_version(path="noc/netops")["data"]["data"]["password"]',
                "getpass.getpass()",
            ]
        )

    def t30_nb_ref(self) -> str:
        return self.pick(
            [
                "os.environ['CH_PASSWORD']",
                "getpass.getpass('ClickHouse password: ')",
                "keyring.get_password('clickhouse', 'analyst_ro')",
            ]
        )

    def t30_partner_example(self) -> str:
        return self.pick(
            [
                "nvtw_live_" + "X" * 40,
                "nvtw_test_" + "0" * 40,
                "nvtw_live_EXAMPLEKEYEXAMPLEKEYEXAMPLEKEY00000000",
                "<your-partner-key>",
                "nvtw_test_" + "1234567890" * 4,
            ]
        )

    def t30_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("CDR_KAFKA_PASSWORD")',
                'mustEnv("CDR_KAFKA_PASSWORD")',
                'readSecret("/run/secrets/kafka")',
            ]
        )

    def t30_rs_ref(self) -> str:
        return self.pick(
            [
                'std::env::var("RATER_KAFKA_PASSWORD")?',
                'std::fs::read_to_string("/run/secrets/kafka_password")?',
                'dotenvy::var("RATER_KAFKA_PASSWORD")?',
            ]
        )

    def t30_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.SESSION_SECRET",
                'process.env["WIFI_DEFAULT_PSK"] ?? ""',
                "config.get('session.secret')",
                "ext('vault', 'get', 'cpe/wifi-default')",
            ]
        )

    def t30_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:ACS_NBI_PASSWORD",
                "(Get-Secret -Name AcsNbi -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
            ]
        )

    def t30_kts_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("NVT_STORE_PASSWORD")',
                'providers.gradleProperty("nvtKeyPassword").get()',
                'localProps.getProperty("storePassword")',
            ]
        )

    def t30_jinja_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_radius_secret }}",
                "{{ smsgw_smpp_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret/data/net:password') }}",
                "{{ vault_enable_secret }}",
                "{{ ext.sip_password }}",
            ]
        )

    def t30_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.KAFKA_PASSWORD }}",
                "$ANSIBLE_NET_PASSWORD",
                "${NETBOX_TOKEN}",
                "${{ secrets.NOC_SLACK_WEBHOOK }}",
                "$VAULT_NETBOX_TOKEN",
            ]
        )

    def t30_sh_ref(self) -> str:
        return self.pick(
            [
                '"$(vault kv get -field=password secret/field/olt)"',
                '"${OLT_PASSWORD:?set OLT_PASSWORD}"',
                '"$(pass show nvt/olt-root)"',
                '"$(op read op://Field/OLT-root/password)"',
            ]
        )

    def t30_placeholder(self) -> str:
        return self.pick(
            [
                "changeme",
                "<radius-shared-secret>",
                "CHANGE_ME",
                "********",
                "<redacted>",
                "[REDACTED]",
                "xxxxxxxx",
                "YOUR_API_KEY",
                "<password>",
                "TODO",
                "replace-me",
                "__SMPP_PASSWORD__",
            ]
        )

    def t30_redacted(self) -> str:
        return self.pick(["********", "[REDACTED]", "<redacted>", "***", "(hidden)", "[FILTERED]"])

    def t30_fake(self) -> str:
        return self.pick(
            [
                "test-secret-not-real",
                "fake-smpp-pw",
                "dummy_password",
                "unit-test-token-0000",
                "not-a-real-key",
                "pytest-only-secret",
                "example-secret",
                "fakefakefakefake",
            ]
        )

    def t30_ios_hash(self) -> str:
        """Cisco IOS/IOS-XE type 8 (PBKDF2) and type 9 (scrypt) secrets, and type 5 md5crypt."""
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"9 $9${self.s(14, CISCO64)}${self.s(43, CISCO64)}"
        if shape == 1:
            return f"8 $8${self.s(14, CISCO64)}${self.s(43, CISCO64)}"
        return f"5 $1${self.s(4, CRYPT64)}${self.s(22, CRYPT64)}"

    def t30_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def t30_sha256_hex(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t30_md5_hex(self) -> str:
        return self.s(32, HEX)

    def t30_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 34, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t30_sops(self) -> str:
        data = self.t30_util_b64(self.rng.randrange(12, 40))
        iv = self.t30_util_b64(32)
        tag = self.t30_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def t30_sealed(self) -> str:
        return "AgB" + self.t30_util_b64(400)

    def t30_wg_public(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def t30_ssh_public(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        )
        return f"ssh-ed25519 {body.decode()} {self.pick(self.users)}@nvt-jump01"

    def t30_certificate(self) -> str:
        return self.t30_util_armor("CERTIFICATE", 48 * 22)

    def t30_public_pem(self) -> str:
        return self.t30_util_armor("PUBLIC KEY", 294)

    def t30_mapbox_pk(self) -> str:
        head = (
            base64.b64encode(
                json.dumps(
                    {"u": "norrvik-gis", "a": self.s(25, LOWNUM)}, separators=(",", ":")
                ).encode()
            )
            .decode()
            .rstrip("=")
        )
        return f"pk.{head}.{self.s(22, URLSAFE)}"

    def t30_imsi(self) -> str:
        return "24012" + self.s(10, DIGITS)

    def t30_iccid(self) -> str:
        body = "894601" + self.s(12, DIGITS)
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        return body + str((10 - total % 10) % 10)

    def t30_imei(self) -> str:
        body = self.pick(["35391110", "35846710", "86769304"]) + self.s(6, DIGITS)
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        return body + str((10 - total % 10) % 10)

    def t30_cpe_serial(self) -> str:
        return self.pick(
            [
                "ZTEG" + self.s(8, HEXU),
                "HWTC" + self.s(8, HEXU),
                "ALCL" + self.s(8, HEXU),
                "CP" + self.s(4, DIGITS) + self.s(6, UPNUM),
            ]
        )

    def t30_authenticator(self) -> str:
        return "0x" + self.s(32, HEX)

    def t30_sip_nonce(self) -> str:
        return self.pick([self.s(32, HEX), self.t30_util_b64(24)])

    def t30_session_id(self) -> str:
        return (
            f"pcrf01.epc.norrvik.se;{self.rng.randrange(10**9, 4 * 10**9)};"
            f"{self.rng.randrange(10**6, 10**8)}"
        )

    def t30_twilio_sid(self) -> str:
        return self.pick(["AC", "MG", "PN"]) + self.s(32, HEX)

    def t30_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t30_git_sha(self) -> str:
        return self.s(40, HEX)

    def t30_image_digest(self) -> str:
        return "sha256:" + self.t30_sha256_hex()

    def t30_i18n(self) -> str:
        return self.pick(
            [
                "Lösenordet måste vara minst 10 tecken",
                "Fel lösenord, försök igen",
                "Glömt lösenordet?",
                "Passordet er feil",
                "Salasana on liian lyhyt",
                "Adgangskoden er forkert",
                "Das Passwort ist abgelaufen",
                "Nieprawidłowe hasło",
            ]
        )

    def t30_doc_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "sk_test_EXAMPLE",
                "example-token",
                "s3cr3t-example",
                "EXAMPLE_SECRET_DO_NOT_USE",
            ]
        )

    def t30_clickhouse_hash(self) -> str:
        return self.t30_sha256_hex()

    def t30_pg_scram(self) -> str:
        return (
            f"SCRAM-SHA-256$4096:{self.t30_util_b64(16)}${self.t30_util_b64(32)}:"
            f"{self.t30_util_b64(32)}"
        )

    def t30_bcrypt(self) -> str:
        return "$2b$12$" + self.s(53, CRYPT64)

    def t30_secret_name(self) -> str:
        return self.pick(
            [
                "radius-shared-secret",
                "smsgw-smpp-credentials",
                "bss-db-credentials",
                "acs-connreq",
                "sip-trunk-auth",
                "partner-oauth",
            ]
        )

    def t30_op_ref(self) -> str:
        return self.pick(
            [
                "op://NOC/tacacs-key/password",
                "vault:secret/data/aaa/radius#secret",
                "arn:aws:secretsmanager:eu-north-1:410582936617:secret:prod/smsgw/smpp-Xb3kQz",
                "projects/nvt-prod/secrets/partner-hmac/versions/latest",
                "kv://nvt-kv-prod/acs-cr-password",
            ]
        )

    def t30_msisdn(self) -> str:
        return "+467" + self.pick(["0", "2", "3", "6"]) + self.s(7, DIGITS)

    def t30_mac(self) -> str:
        return ":".join(self.s(2, HEX) for _ in range(6))

    def t30_small(self) -> str:
        return self.pick(["8", "10", "12", "16", "3600", "86400", "1812", "1813"])


VALUES = Tune30Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = [
    # ================================================================ AAA: FreeRADIUS / TACACS+
    _t(
        "aaa/freeradius/clients.conf",
        "t30_shared_secret",
        True,
        """
        # BNG and NAS clients of radius01/radius02 (NVT-AAA-112)
        client bng-sthlm-01 {
            ipaddr = 10.40.1.11
            secret = {V}
            require_message_authenticator = yes
            nas_type = other
            shortname = bng-sthlm-01
        }

        client bng-upps-02 {
            ipaddr = 10.40.2.11
            secret = {V2}
            shortname = bng-upps-02
        }

        client wlc-hq {
            ipaddr = 10.12.0.0/24
            secret = {V3}
        }
        """,
    ),
    _t(
        "aaa/freeradius/clients.conf.tmpl",
        "t30_env_ref",
        False,
        """
        # rendered by consul-template on deploy; never commit the rendered file
        client bng-sthlm-01 {
            ipaddr = 10.40.1.11
            secret = {V}
            require_message_authenticator = yes
        }

        client bng-upps-02 {
            ipaddr = 10.40.2.11
            secret = {V2}
        }
        """,
    ),
    _t(
        "aaa/freeradius/mods-available/sql",
        "t30_pw",
        True,
        """
        sql {
            dialect = "postgresql"
            driver = "rlm_sql_${dialect}"
            server = "aaa-db01.nvt.internal"
            port = 5432
            login = "radius"
            password = "{V}"
            radius_db = "radius"
            acct_table1 = "radacct"
            acct_table2 = "radacct"
            postauth_table = "radpostauth"
            authcheck_table = "radcheck"
            pool {
                start = 5
                min = 4
                max = 32
            }
            read_clients = yes
            client_table = "nas"
        }
        """,
    ),
    _t(
        "aaa/freeradius/mods-available/ldap",
        "t30_env_ref",
        False,
        """
        ldap {
            server = 'ldaps://ad01.corp.norrvik.se'
            port = 636
            identity = 'CN=svc-radius,OU=Service,DC=corp,DC=norrvik,DC=se'
            password = {V}
            base_dn = 'DC=corp,DC=norrvik,DC=se'
            user {
                base_dn = "${..base_dn}"
                filter = "(sAMAccountName=%{%{Stripped-User-Name}:-%{User-Name}})"
            }
        }
        """,
    ),
    _t(
        "aaa/freeradius/users",
        "t30_pw",
        True,
        """
        # static test subscribers for the lab BNG (do not add real customers here)
        lab-fttx-0001@nvt.lab  Cleartext-Password := "{V}"
                Framed-IP-Address = 100.64.10.1,
                Mikrotik-Rate-Limit = "250M/250M"

        noc-probe@nvt.net  Cleartext-Password := "{V2}"
                Service-Type = Framed-User,
                Framed-Protocol = PPP

        DEFAULT Auth-Type := Reject
                Reply-Message = "Account not provisioned"
        """,
    ),
    _t(
        "aaa/freeradius/dictionary.norrvik",
        "t30_small",
        False,
        """
        # Norrvik Telecom vendor-specific attributes (PEN 59021)
        VENDOR      Norrvik     59021

        BEGIN-VENDOR    Norrvik
        ATTRIBUTE   NVT-Product-Code        1   string
        ATTRIBUTE   NVT-Rate-Profile        2   string
        ATTRIBUTE   NVT-Session-Timeout     3   integer
        ATTRIBUTE   NVT-Max-Sessions        4   integer
        ATTRIBUTE   NVT-Password-Min-Len    5   integer
        END-VENDOR      Norrvik

        # default NVT-Max-Sessions when the product has no explicit limit: {V}
        """,
    ),
    _t(
        "aaa/logs/radiusd-debug-2025-03-14.log",
        "t30_pw",
        True,
        """
        (41) Received Access-Request Id 212 from 10.40.1.11:51820 to 10.40.0.5:1812 length 212
        (41)   User-Name = "f00231877@nvt.net"
        (41)   User-Password = "{V}"
        (41)   NAS-IP-Address = 10.40.1.11
        (41)   NAS-Port-Id = "ge-0/0/3.2001:2001-100"
        (41)   Calling-Station-Id = "a4:91:b1:0c:22:7e"
        (41) # Executing section authorize from file /etc/freeradius/3.0/sites-enabled/default
        (41)   authorize {
        (41) sql: EXPAND %{User-Name}
        (41) sql: --> f00231877@nvt.net
        (41)     [sql] = ok
        (41) Sent Access-Accept Id 212 from 10.40.0.5:1812 to 10.40.1.11:51820 length 0
        """,
    ),
    _t(
        "aaa/logs/radiusd-debug-2025-03-15.log",
        "t30_authenticator",
        False,
        """
        (7) Received Access-Request Id 19 from 10.40.2.11:40112 to 10.40.0.5:1812 length 188
        (7)   User-Name = "f00918223@nvt.net"
        (7)   CHAP-Password = {V}
        (7)   CHAP-Challenge = {V2}
        (7)   Message-Authenticator = {V3}
        (7)   NAS-IP-Address = 10.40.2.11
        (7) chap: Comparing with "known good" Cleartext-Password
        (7) chap: CHAP user "f00918223@nvt.net" authenticated successfully
        (7) Sent Access-Accept Id 19 from 10.40.0.5:1812 to 10.40.2.11:40112 length 0
        """,
    ),
    _t(
        "aaa/tacacs/tac_plus.cfg",
        "t30_shared_secret",
        True,
        """
        # tac_plus (shrubbery) on tacacs01 — device admin for the core
        key = "{V}"

        accounting file = /var/log/tac_plus.acct

        group = noc-admin {
            default service = permit
            service = exec {
                priv-lvl = 15
            }
        }

        user = breakglass {
            login = cleartext "{V2}"
            member = noc-admin
        }

        user = DEFAULT {
            login = PAM
        }
        """,
    ),
    _t(
        "aaa/tacacs/tac_plus.cfg.example",
        "t30_placeholder",
        False,
        """
        # copy to /etc/tac_plus.conf and fill in from the NOC vault entry "tacacs01"
        key = "{V}"

        group = noc-admin {
            default service = permit
            service = exec { priv-lvl = 15 }
        }

        user = breakglass {
            login = cleartext "{V2}"
            member = noc-admin
        }
        """,
    ),
    _t(
        "aaa/diameter/freeDiameter.conf",
        "t30_small",
        False,
        """
        # freeDiameter on the Gx/Gy proxy (dra01)
        Identity = "dra01.epc.norrvik.se";
        Realm = "epc.norrvik.se";
        Port = 3868;
        SecPort = 5658;
        TLS_Cred = "/etc/freeDiameter/dra01.cert.pem", "/etc/freeDiameter/dra01.key.pem";
        TLS_CA = "/etc/freeDiameter/nvt-epc-ca.pem";
        TcTimer = 30;
        TwTimer = {V};
        ConnectPeer = "pcrf01.epc.norrvik.se" { ConnectTo = "10.60.0.21"; No_TLS; };
        ConnectPeer = "ocs01.epc.norrvik.se" { ConnectTo = "10.60.0.31"; };
        LoadExtension = "dict_dcca_3gpp.fdx";
        """,
    ),
    _t(
        "aaa/diameter/logs/gx-trace-0412.txt",
        "t30_session_id",
        False,
        """
        2025-04-12T09:14:02.331Z CCR-I  Session-Id={V} Origin-Host=pgw02.epc.norrvik.se
            Subscription-Id-Data(IMSI)=240120004418273  Rating-Group=100
        2025-04-12T09:14:02.338Z CCA-I  Session-Id={V} Result-Code=2001
            Charging-Rule-Name=nvt_default_4g  QoS-Class-Identifier=9
        2025-04-12T09:44:02.101Z CCR-U  Session-Id={V2} Origin-Host=pgw01.epc.norrvik.se
        2025-04-12T09:44:02.109Z CCA-U  Session-Id={V2} Result-Code=2001
        """,
    ),
    _t(
        "aaa/diameter/hss-peer.env",
        "t30_pw",
        True,
        """
        # HSS provisioning interface (SOAP over HTTPS) used by the SIM activation flow
        HSS_PROV_URL=https://hss-prov.epc.norrvik.se:8443/ProvisioningGateway
        HSS_PROV_USER=bss_simactivation
        HSS_PROV_PASSWORD={V}
        HSS_OPC_TRANSPORT=mtls
        HSS_TIMEOUT_MS=4000
        """,
    ),
    # ================================================================ network automation
    _t(
        "netauto/ansible/inventories/prod/group_vars/core_routers.yml",
        "t30_pw",
        True,
        """
        ---
        ansible_connection: ansible.netcommon.network_cli
        ansible_network_os: cisco.iosxr.iosxr
        ansible_user: netops
        ansible_password: {V}
        ansible_become: false
        ntp_servers:
          - 10.0.0.123
          - 10.0.1.123
        """,
    ),
    _t(
        "netauto/ansible/inventories/prod/group_vars/access_switches/vault.yml",
        "t30_ansible_vault",
        False,
        """
        {V}
        """,
    ),
    _t(
        "netauto/ansible/inventories/prod/group_vars/access_switches/vars.yml",
        "t30_jinja_ref",
        False,
        """
        ---
        ansible_connection: ansible.netcommon.network_cli
        ansible_network_os: cisco.ios.ios
        ansible_user: netops
        ansible_password: "{V}"
        ansible_become: true
        ansible_become_method: enable
        ansible_become_password: "{V2}"
        """,
    ),
    _t(
        "netauto/ansible/inventories/lab/hosts.ini",
        "t30_weak_pw",
        True,
        """
        [olt]
        olt-lab-01 ansible_host=10.250.3.10
        olt-lab-02 ansible_host=10.250.3.11

        [olt:vars]
        ansible_network_os=community.network.ce
        ansible_user=root
        ansible_password={V}

        [mikrotik]
        mt-lab-edge ansible_host=10.250.3.40 ansible_user=admin ansible_password={V2}
        """,
    ),
    _t(
        "netauto/ansible/playbooks/snmp_hardening.yml",
        "t30_shared_secret",
        True,
        """
        ---
        - name: Replace SNMP communities on access switches (NETOPS-771)
          hosts: access_switches
          gather_facts: false
          vars:
            snmp_rw_community: "{V}"
          tasks:
            - name: Remove legacy communities
              cisco.ios.ios_config:
                lines:
                  - no snmp-server community public
                  - no snmp-server community private
            - name: Push new RW community restricted to the NMS ACL
              cisco.ios.ios_config:
                lines:
                  - "snmp-server community {{ snmp_rw_community }} RW 95"
        """,
    ),
    _t(
        "netauto/nornir/inventory/defaults.yaml",
        "t30_pw",
        True,
        """
        ---
        username: netops
        password: {V}
        platform: iosxr
        connection_options:
          napalm:
            extras:
              optional_args:
                secret: {V2}
          netconf:
            port: 830
            extras:
              hostkey_verify: false
        """,
    ),
    _t(
        "netauto/nornir/inventory/defaults.example.yaml",
        "t30_placeholder",
        False,
        """
        ---
        # copy to defaults.yaml; the real values live in the NOC 1Password vault
        username: netops
        password: {V}
        platform: iosxr
        connection_options:
          napalm:
            extras:
              optional_args:
                secret: {V2}
        """,
    ),
    _t(
        "netauto/nornir/run_backup.py",
        "t30_py_ref",
        False,
        '''
        """Nightly config backup of the core with Nornir + NAPALM."""
        import os

        from nornir import InitNornir
        from nornir_napalm.plugins.tasks import napalm_get
        from nornir_utils.plugins.functions import print_result

        nr = InitNornir(config_file="config.yaml")
        nr.inventory.defaults.username = "netops"
        nr.inventory.defaults.password = {V}

        result = nr.filter(role="core").run(task=napalm_get, getters=["config"])
        print_result(result)
        ''',
    ),
    _t(
        "netauto/scripts/netconf_push_qos.py",
        "t30_pw",
        True,
        """
        #!/usr/bin/env python3
        # push the residential QoS policy to the Junos BNGs over NETCONF (NETOPS-802)
        from ncclient import manager

        BNGS = ["10.40.1.11", "10.40.2.11", "10.40.3.11"]

        with open("qos-residential.xml") as fh:
            payload = fh.read()

        for host in BNGS:
            with manager.connect(
                host=host,
                port=830,
                username="netconf-automation",
                password="{V}",
                hostkey_verify=False,
                device_params={"name": "junos"},
            ) as m:
                m.edit_config(target="candidate", config=payload)
                m.commit(comment="NETOPS-802 residential QoS")
        """,
    ),
    _t(
        "netauto/scripts/netmiko_show_optics.py",
        "t30_py_ref",
        False,
        """
        import csv
        import os

        from netmiko import ConnectHandler

        DEVICE = {
            "device_type": "cisco_xr",
            "host": "cr1-sthlm.nvt.net",
            "username": os.environ.get("NETOPS_USER", "netops"),
            "password": {V},
        }

        with ConnectHandler(**DEVICE) as conn:
            out = conn.send_command("show controllers optics 0/0/0/0", use_textfsm=True)

        with open("optics.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(out)
        """,
    ),
    _t(
        "netauto/configs/cr1-sthlm.iosxr.cfg",
        "t30_ios_hash",
        False,
        """
        !! IOS XR Configuration 7.9.2
        hostname cr1-sthlm
        domain name nvt.net
        username netops
         group root-lr
         group cisco-support
         secret {V}
        !
        username oxidized
         group read-only-tg
         secret {V2}
        !
        aaa authentication login default group tacacs+ local
        tacacs source Loopback0
        tacacs-server host 10.0.0.49 port 49
        !
        """,
    ),
    _t(
        "netauto/configs/as-kista-14.ios.cfg",
        "t30_shared_secret",
        True,
        """
        hostname as-kista-14
        !
        tacacs server tacacs01
         address ipv4 10.0.0.49
         key 0 {V}
        !
        snmp-server community {V2} RW 95
        snmp-server location Kista POP rack B14
        !
        line vty 0 15
         transport input ssh
        """,
    ),
    _t(
        "netauto/configs/mx-bng-upps-02.junos.conf",
        "t30_sha512crypt",
        False,
        """
        system {
            host-name bng-upps-02;
            root-authentication {
                encrypted-password "{V}"; ## SECRET-DATA
            }
            login {
                user netconf-automation {
                    uid 2001;
                    class super-user;
                    authentication {
                        encrypted-password "{V2}"; ## SECRET-DATA
                    }
                }
            }
            services {
                netconf { ssh; }
            }
        }
        """,
    ),
    _t(
        "netauto/configs/mt-chr-edge.rsc",
        "t30_pw",
        True,
        """
        # feb/11/2025 10:02:44 by RouterOS 7.14.3
        # model = CHR
        /interface pppoe-client
        add disabled=no interface=ether1 name=pppoe-upstream user=nvt-transit-02 password={V}
        /ip service
        set telnet disabled=yes
        set ftp disabled=yes
        /user
        add group=full name=fieldeng password="{V2}"
        /snmp community
        set [ find default=yes ] disabled=yes
        """,
    ),
    _t(
        "netauto/wireguard/wg-noc.conf",
        "t30_wg_private",
        True,
        """
        # NOC remote access concentrator (wg01.nvt.net)
        [Interface]
        Address = 10.255.8.1/24
        ListenPort = 51820
        PrivateKey = {V}

        # [Peer] sections are appended by wg-peer-sync from NetBox
        PostUp = /usr/local/bin/wg-peer-sync --iface %i
        """,
    ),
    _t(
        "netauto/wireguard/peers.md",
        "t30_wg_public",
        False,
        """
        # WireGuard peers on wg01

        Public keys only — each engineer keeps their private key on their laptop.

        | Engineer | Tunnel IP | PublicKey |
        |---|---|---|
        | A. Lindqvist | 10.255.8.21 | `{V}` |
        | M. Rahimi | 10.255.8.22 | `{V2}` |
        | J. Korhonen | 10.255.8.23 | `{V3}` |

        Server public key: `{V4}`
        """,
    ),
    _t(
        "netauto/netbox/scripts/sync_circuits.py",
        "t30_netbox_token",
        True,
        """
        import pynetbox
        import requests

        NETBOX_URL = "https://netbox.nvt.internal"
        NETBOX_TOKEN = "{V}"

        nb = pynetbox.api(NETBOX_URL, token=NETBOX_TOKEN)
        nb.http_session.verify = "/etc/ssl/certs/nvt-internal-ca.pem"


        def sync():
            for row in requests.get("https://wholesale.nvt.internal/api/circuits", timeout=30).json():
                nb.circuits.circuits.update([{"cid": row["cid"], "status": row["status"]}])
        """,
    ),
    _t(
        "netauto/oxidized/config",
        "t30_pw",
        True,
        """
        ---
        username: oxidized
        password: {V}
        model: iosxr
        resolve_dns: true
        interval: 3600
        use_syslog: false
        threads: 30
        timeout: 20
        retries: 3
        input:
          default: ssh
          ssh:
            secure: false
        output:
          default: git
          git:
            user: Oxidized
            email: noc@norrvik-telecom.se
            repo: "/var/lib/oxidized/configs.git"
        source:
          default: http
          http:
            url: https://netbox.nvt.internal/api/dcim/devices/?status=active
            scheme: https
            map:
              name: name
              model: platform.slug
        """,
    ),
    _t(
        "netauto/oxidized/router.db.sample",
        "t30_fake",
        False,
        """
        # name:model:username:password  (sample for the lab only; production uses the NetBox source)
        cr1-lab:iosxr:oxidized:{V}
        as-lab-01:ios:oxidized:{V2}
        """,
    ),
]
TEMPLATES += [
    # ================================================================ OSS/BSS
    _t(
        "bss/billing-core/src/main/resources/application-prod.properties",
        "t30_pw",
        True,
        """
        spring.application.name=billing-core
        spring.datasource.url=jdbc:oracle:thin:@//bssdb-scan.nvt.internal:1521/BSSPRD
        spring.datasource.username=BILLING_APP
        spring.datasource.password={V}
        spring.jpa.hibernate.ddl-auto=validate
        nvt.rating.kafka.bootstrap=kafka-cdr-1.nvt.internal:9093
        nvt.rating.kafka.sasl-jaas=org.apache.kafka.common.security.scram.ScramLoginModule required username="rating" password="{V2}";
        nvt.invoice.pdf.output=/data/invoices
        """,
    ),
    _t(
        "bss/billing-core/src/main/resources/application.properties",
        "t30_yaml_ref",
        False,
        """
        spring.application.name=billing-core
        spring.datasource.url=jdbc:oracle:thin:@//${BSS_DB_HOST}:1521/${BSS_DB_SERVICE}
        spring.datasource.username=${BSS_DB_USER:BILLING_APP}
        spring.datasource.password={V}
        nvt.rating.kafka.bootstrap=${KAFKA_BOOTSTRAP}
        nvt.invoice.pdf.output=/data/invoices
        """,
    ),
    _t(
        "bss/order-mgmt/src/main/resources/application-prod.yml",
        "t30_sops",
        False,
        """
        spring:
          datasource:
            url: jdbc:postgresql://om-db.nvt.internal:5432/orders
            username: om_app
            password: {V}
        nvt:
          fulfilment:
            acs-api-password: {V2}
        sops:
          kms:
            - arn: arn:aws:kms:eu-north-1:410582936617:key/4e1b3f7a-9d2c-4b8e-a1f0-6c5d2e7b9a31
          lastmodified: "2025-02-11T09:21:44Z"
          version: 3.8.1
        """,
    ),
    _t(
        "bss/order-mgmt/src/test/java/se/norrvik/om/PortingClientTest.java",
        "t30_fake",
        False,
        """
        package se.norrvik.om;

        import static org.assertj.core.api.Assertions.assertThat;

        import org.junit.jupiter.api.Test;

        class PortingClientTest {

            private static final String FAKE_PASSWORD = "{V}";

            @Test
            void buildsBasicAuthHeaderFromConfiguredCredentials() {
                var client = new PortingClient("https://localhost:8089", "om-test", FAKE_PASSWORD);
                assertThat(client.authHeader()).startsWith("Basic ");
            }
        }
        """,
    ),
    _t(
        "bss/order-mgmt/src/main/java/se/norrvik/om/porting/NumberPortingConfig.java",
        "t30_pw",
        True,
        """
        package se.norrvik.om.porting;

        import org.springframework.context.annotation.Bean;
        import org.springframework.context.annotation.Configuration;

        /** Central number-portability database (SNPAC) client. TODO move creds to Vault (OM-1290). */
        @Configuration
        public class NumberPortingConfig {

            static final String NP_ENDPOINT = "https://np-gw.snpac.se/ws/v3";
            static final String NP_USER = "NVT_OP_0417";
            static final String NP_PASSWORD = "{V}";

            @Bean
            PortingClient portingClient() {
                return new PortingClient(NP_ENDPOINT, NP_USER, NP_PASSWORD);
            }
        }
        """,
    ),
    _t(
        "bss/db/oracle/R__grants_mediation.sql",
        "t30_pw",
        True,
        """
        -- mediation reads rated CDRs and writes usage summaries (BSS-2201)
        CREATE USER MEDIATION_RO IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE USERS
          PROFILE APP_PROFILE;
        GRANT CREATE SESSION TO MEDIATION_RO;
        GRANT SELECT ON BILLING.RATED_CDR TO MEDIATION_RO;
        GRANT SELECT ON BILLING.SUBSCRIBER TO MEDIATION_RO;

        ALTER USER USAGE_WRITER IDENTIFIED BY "{V2}" ACCOUNT UNLOCK;
        """,
    ),
    _t(
        "bss/db/postgres/roles_dump_2025-01.sql",
        "t30_pg_scram",
        False,
        """
        --
        -- PostgreSQL database cluster dump (roles only) of om-db
        --
        CREATE ROLE om_app;
        ALTER ROLE om_app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V}';
        CREATE ROLE om_report;
        ALTER ROLE om_report WITH NOSUPERUSER INHERIT LOGIN PASSWORD '{V2}';
        CREATE ROLE grafana_ro;
        ALTER ROLE grafana_ro WITH LOGIN PASSWORD '{V3}';
        """,
    ),
    _t(
        "bss/selfcare-portal/portal/settings/production.py",
        "t30_jwt_secret",
        True,
        """
        from .base import *  # noqa: F401,F403

        DEBUG = False
        ALLOWED_HOSTS = ["minasidor.norrvik-telecom.se"]

        SECRET_KEY = "{V}"

        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "portal-db.nvt.internal",
                "NAME": "selfcare",
                "USER": "selfcare",
            }
        }

        BANKID_RP_SIGNING_KEY = "{V2}"
        """,
    ),
    _t(
        "bss/selfcare-portal/portal/settings/base.py",
        "t30_py_ref",
        False,
        """
        import os
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent.parent
        SMPP_PASSWORD = os.environ.get("SMPP_PASSWORD", "")
        SECRET_KEY = {V}
        AUTH_PASSWORD_VALIDATORS = [
            {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
             "OPTIONS": {"min_length": 10}},
            {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
        ]
        LANGUAGE_CODE = "sv-se"
        """,
    ),
    _t(
        "bss/selfcare-portal/locale/sv/LC_MESSAGES/django.po",
        "t30_i18n",
        False,
        """
        #: portal/accounts/forms.py:41
        msgid "Password must be at least 10 characters"
        msgstr "{V}"

        #: portal/accounts/forms.py:58
        msgid "Wrong password, try again"
        msgstr "{V2}"

        #: portal/accounts/templates/login.html:22
        msgid "Forgot your password?"
        msgstr "{V3}"
        """,
    ),
    # ================================================================ CDR pipeline
    _t(
        "cdr/airflow/dags/cdr_daily_rollup.py",
        "t30_url_pw",
        True,
        """
        from datetime import datetime

        from airflow import DAG
        from airflow.providers.postgres.operators.postgres import PostgresOperator

        # conn string kept here until the Airflow connection UI works behind the proxy (CDR-318)
        WAREHOUSE_URI = "postgresql://cdr_etl:{V}@dwh01.nvt.internal:5432/cdr"

        with DAG("cdr_daily_rollup", start_date=datetime(2025, 1, 1), schedule="15 2 * * *") as dag:
            PostgresOperator(
                task_id="rollup",
                postgres_conn_id="dwh",
                sql="sql/rollup_daily.sql",
            )
        """,
    ),
    _t(
        "cdr/airflow/docker-compose.override.yml",
        "t30_url_pw",
        True,
        """
        services:
          airflow-scheduler:
            environment:
              AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: postgresql+psycopg2://airflow:{V}@airflow-db/airflow
              AIRFLOW_CONN_DWH: postgresql://cdr_etl:{V2}@dwh01.nvt.internal:5432/cdr
              AIRFLOW_CONN_CLICKHOUSE: clickhouse://cdr_writer:{V3}@ch01.nvt.internal:9000/cdr
        """,
    ),
    _t(
        "cdr/airflow/.env.example",
        "t30_placeholder",
        False,
        """
        # Copy to .env for local development
        AIRFLOW_UID=50000
        POSTGRES_PASSWORD={V}
        CDR_SFTP_PASSWORD={V2}
        CLICKHOUSE_PASSWORD={V3}
        """,
    ),
    _t(
        "cdr/clickhouse/users.d/cdr_users.xml",
        "t30_pw",
        True,
        """
        <clickhouse>
          <users>
            <cdr_writer>
              <password>{V}</password>
              <networks><ip>10.70.0.0/16</ip></networks>
              <profile>default</profile>
              <quota>default</quota>
            </cdr_writer>
            <grafana>
              <password>{V2}</password>
              <profile>readonly</profile>
            </grafana>
          </users>
        </clickhouse>
        """,
    ),
    _t(
        "cdr/clickhouse/users.d/analysts.xml",
        "t30_clickhouse_hash",
        False,
        """
        <clickhouse>
          <users>
            <analyst_ro>
              <password_sha256_hex>{V}</password_sha256_hex>
              <profile>readonly</profile>
              <networks><ip>10.12.0.0/16</ip></networks>
            </analyst_ro>
            <fraud_team>
              <password_sha256_hex>{V2}</password_sha256_hex>
              <profile>readonly</profile>
            </fraud_team>
          </users>
        </clickhouse>
        """,
    ),
    _t(
        "cdr/collector-go/internal/sftp/pull.go",
        "t30_pw",
        True,
        """
        package sftp

        import (
        	"fmt"
        	"time"

        	"github.com/pkg/sftp"
        	"golang.org/x/crypto/ssh"
        )

        // MSC CDR drop on the Ericsson mediation node. Password auth only: the node's
        // sshd predates key exchange algorithms we accept.
        const (
        	mscHost = "msc-cdr01.core.norrvik.se:22"
        	mscUser = "cdrpull"
        	mscPass = "{V}"
        )

        func Dial() (*sftp.Client, error) {
        	cfg := &ssh.ClientConfig{
        		User:            mscUser,
        		Auth:            []ssh.AuthMethod{ssh.Password(mscPass)},
        		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
        		Timeout:         15 * time.Second,
        	}
        	conn, err := ssh.Dial("tcp", mscHost, cfg)
        	if err != nil {
        		return nil, fmt.Errorf("dial msc: %w", err)
        	}
        	return sftp.NewClient(conn)
        }
        """,
    ),
    _t(
        "cdr/collector-go/internal/config/config.go",
        "t30_go_ref",
        False,
        """
        package config

        import "os"

        type Kafka struct {
        	Brokers  []string
        	Username string
        	Password string
        }

        func Load() Kafka {
        	return Kafka{
        		Brokers:  []string{"kafka-cdr-1.nvt.internal:9093"},
        		Username: "cdr-collector",
        		Password: {V},
        	}
        }

        var _ = os.Getenv
        """,
    ),
    _t(
        "cdr/rater-rs/src/main.rs",
        "t30_rs_ref",
        False,
        """
        use anyhow::Result;
        use rdkafka::config::ClientConfig;

        fn main() -> Result<()> {
            let password = {V};
            let consumer: rdkafka::consumer::StreamConsumer = ClientConfig::new()
                .set("bootstrap.servers", "kafka-cdr-1.nvt.internal:9093")
                .set("security.protocol", "SASL_SSL")
                .set("sasl.mechanisms", "SCRAM-SHA-512")
                .set("sasl.username", "rater")
                .set("sasl.password", &password)
                .set("group.id", "rater-v2")
                .create()?;
            rater_rs::run(consumer)
        }
        """,
    ),
    _t(
        "cdr/rater-rs/config/local.toml",
        "t30_pw",
        True,
        """
        [kafka]
        brokers = ["kafka-cdr-1.nvt.internal:9093", "kafka-cdr-2.nvt.internal:9093"]
        username = "rater"
        password = "{V}"

        [tariffs]
        source = "postgres://rater_ro@tariff-db.nvt.internal/tariffs"
        refresh_secs = 300

        [clickhouse]
        url = "http://ch01.nvt.internal:8123"
        user = "cdr_writer"
        password = "{V2}"
        """,
    ),
    _t(
        "cdr/spark/jobs/roaming_tap_reconcile.scala",
        "t30_pw",
        True,
        """
        package se.norrvik.cdr

        import org.apache.spark.sql.SparkSession

        object RoamingTapReconcile {
          def main(args: Array[String]): Unit = {
            val spark = SparkSession.builder.appName("tap-reconcile").getOrCreate()
            val tap = spark.read.parquet("s3a://nvt-cdr-lake/tap3/" + args(0))
            val billed = spark.read
              .format("jdbc")
              .option("url", "jdbc:oracle:thin:@//bssdb-scan.nvt.internal:1521/BSSPRD")
              .option("dbtable", "BILLING.ROAMING_USAGE")
              .option("user", "MEDIATION_RO")
              .option("password", "{V}")
              .load()
            tap.join(billed, Seq("imsi", "call_ref"), "left_anti").write.csv(s"/tmp/tap-diff-${args(0)}")
          }
        }
        """,
    ),
    _t(
        "cdr/samples/msc_cdr_sample.csv",
        "t30_imsi",
        False,
        """
        record_type,served_imsi,served_msisdn,calling,called,start_ts,duration_s,cell_id
        MOC,{V},46701234567,46701234567,4687654321,2025-03-01T08:12:44Z,73,240-12-1041-30211
        MTC,{V2},46707654321,4687654321,46707654321,2025-03-01T08:15:02Z,12,240-12-1041-30117
        SMS_MO,{V3},46709998877,46709998877,46705551122,2025-03-01T08:15:40Z,0,240-12-1043-30998
        """,
    ),
    _t(
        "cdr/notebooks/fraud_wangiri.ipynb",
        "t30_url_pw",
        True,
        """
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# Wangiri call-back fraud, week 11\\n", "Short inbound calls from premium ranges."]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "import clickhouse_connect\\n",
            "client = clickhouse_connect.get_client(dsn='clickhouse://fraud_team:{V}@ch01.nvt.internal:8123/cdr')\\n",
            "df = client.query_df(\\"SELECT calling, count() c FROM cdr.voice WHERE duration_s < 3 GROUP BY calling ORDER BY c DESC LIMIT 50\\")"
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
        "cdr/notebooks/churn_features.ipynb",
        "t30_nb_ref",
        False,
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "import os\\n",
            "import clickhouse_connect\\n",
            "pw = {V}\\n",
            "client = clickhouse_connect.get_client(host='ch01.nvt.internal', username='analyst_ro', password=pw)"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    # ================================================================ SMS gateway / SMPP
    _t(
        "smsgw/kannel/kannel.conf",
        "t30_smpp_pw",
        True,
        """
        group = core
        admin-port = 13000
        admin-password = {V}
        smsbox-port = 13001
        log-file = "/var/log/kannel/bearerbox.log"

        group = smsc
        smsc = smpp
        smsc-id = telia-smsc
        host = smpp.partner-smsc.se
        port = 2775
        transceiver-mode = true
        smsc-username = NVT0417
        smsc-password = {V2}
        system-type = VMA

        group = sendsms-user
        username = selfcare
        password = {V3}
        max-messages = 3
        """,
    ),
    _t(
        "smsgw/kannel/kannel.conf.j2",
        "t30_jinja_ref",
        False,
        """
        group = core
        admin-port = 13000
        admin-password = {V}

        group = smsc
        smsc = smpp
        smsc-id = telia-smsc
        host = smpp.partner-smsc.se
        port = 2775
        smsc-username = NVT0417
        smsc-password = {V2}
        """,
    ),
    _t(
        "smsgw/otp-sender/src/main/java/se/norrvik/sms/SmppSessionFactory.java",
        "t30_smpp_pw",
        True,
        """
        package se.norrvik.sms;

        import org.jsmpp.bean.BindType;
        import org.jsmpp.bean.NumberingPlanIndicator;
        import org.jsmpp.bean.TypeOfNumber;
        import org.jsmpp.session.BindParameter;
        import org.jsmpp.session.SMPPSession;

        public final class SmppSessionFactory {
            private static final String SYSTEM_ID = "NVTOTP";
            private static final String PASSWORD = "{V}";

            public static SMPPSession open() throws Exception {
                SMPPSession session = new SMPPSession();
                session.connectAndBind("smpp.partner-smsc.se", 2775,
                    new BindParameter(BindType.BIND_TRX, SYSTEM_ID, PASSWORD, "OTP",
                        TypeOfNumber.UNKNOWN, NumberingPlanIndicator.UNKNOWN, null));
                return session;
            }
        }
        """,
    ),
    _t(
        "smsgw/tools/smpp_bind_test.py",
        "t30_smpp_pw",
        True,
        """
        #!/usr/bin/env python3
        # quick bind test against the new SMSC after the IP change (SMSGW-144)
        import smpplib.client
        import smpplib.consts

        client = smpplib.client.Client("smpp2.partner-smsc.se", 2775, allow_unknown_opt_params=True)
        client.connect()
        client.bind_transceiver(system_id="NVT0417", password="{V}")
        print("bound:", client.state)
        client.unbind()
        client.disconnect()
        """,
    ),
    _t(
        "smsgw/tools/smpp_bind_test_local.py",
        "t30_py_ref",
        False,
        """
        #!/usr/bin/env python3
        import os

        import smpplib.client

        client = smpplib.client.Client(os.environ.get("SMSC_HOST", "localhost"), 2775)
        client.connect()
        client.bind_transceiver(system_id="NVT0417", password={V})
        client.unbind()
        """,
    ),
    _t(
        "smsgw/logs/bearerbox-2025-02-20.log",
        "t30_redacted",
        False,
        """
        2025-02-20 06:00:01 [2211] [6] INFO: SMPP[telia-smsc]: connecting to smpp.partner-smsc.se:2775
        2025-02-20 06:00:01 [2211] [6] DEBUG: SMPP PDU 0x7f3a1c001e90 dump:
        2025-02-20 06:00:01 [2211] [6] DEBUG:   type_name: bind_transceiver
        2025-02-20 06:00:01 [2211] [6] DEBUG:   system_id: "NVT0417"
        2025-02-20 06:00:01 [2211] [6] DEBUG:   password: "{V}"
        2025-02-20 06:00:01 [2211] [6] DEBUG:   system_type: "VMA"
        2025-02-20 06:00:01 [2211] [6] INFO: SMPP[telia-smsc]: bind_transceiver_resp OK
        """,
    ),
    _t(
        "smsgw/jasmin/jcli-provision.txt",
        "t30_smpp_pw",
        True,
        """
        # jcli session used to rebuild the Jasmin connectors after the VM migration (SMSGW-150)
        jcli : smppccm -a
        > cid partner_smsc_a
        > host smpp.partner-smsc.se
        > port 2775
        > username NVT0417
        > password {V}
        > submit_throughput 50
        > ok
        jcli : user -a
        > username selfcare_otp
        > password {V2}
        > gid otp
        > uid selfcare_otp
        > ok
        """,
    ),
    _t(
        "smsgw/twilio-fallback/.env.production",
        "t30_twilio_token",
        True,
        """
        # fallback route for OTP when both SMSCs are down
        TWILIO_ACCOUNT_SID=AC3f9e12d07b6c4a58e1d2f3a4b5c6d7e8
        TWILIO_AUTH_TOKEN={V}
        TWILIO_MESSAGING_SERVICE_SID=MG0a1b2c3d4e5f60718293a4b5c6d7e8f9
        OTP_TTL_SECONDS=300
        """,
    ),
    _t(
        "smsgw/twilio-fallback/README.md",
        "t30_twilio_sid",
        False,
        """
        # Twilio fallback

        Used only when both SMPP binds are down. The auth token is in Vault at
        `secret/smsgw/twilio` and is injected as `TWILIO_AUTH_TOKEN`.

        | Thing | Value |
        |---|---|
        | Account SID | `{V}` |
        | Messaging service | `{V2}` |
        | Sender number SID | `{V3}` |
        """,
    ),
]
TEMPLATES += [
    # ================================================================ VoIP / SIP
    _t(
        "voip/asterisk/pjsip.conf",
        "t30_sip_pw",
        True,
        """
        ;; SIP trunk to the transit carrier and the PBX of Norrvik Kommun
        [transit-carrier-auth]
        type=auth
        auth_type=userpass
        username=nvt_trunk_01
        password={V}

        [transit-carrier]
        type=endpoint
        context=from-transit
        outbound_auth=transit-carrier-auth
        aors=transit-carrier
        allow=!all,alaw,g722

        [kommun-pbx-auth]
        type=auth
        auth_type=userpass
        username=kommun-pbx
        password={V2}
        """,
    ),
    _t(
        "voip/asterisk/manager.conf",
        "t30_pw",
        True,
        """
        [general]
        enabled = yes
        port = 5038
        bindaddr = 127.0.0.1

        [callcenter-dialer]
        secret = {V}
        deny = 0.0.0.0/0.0.0.0
        permit = 10.80.0.0/255.255.0.0
        read = call,agent
        write = originate
        """,
    ),
    _t(
        "voip/asterisk/pjsip_wizard.conf.sample",
        "t30_placeholder",
        False,
        """
        ; sample from the field kit — fill in per customer from the provisioning system
        [customer-template](!)
        type = wizard
        accepts_auth = yes
        accepts_registrations = yes
        inbound_auth/username = {V}
        inbound_auth/password = {V2}
        """,
    ),
    _t(
        "voip/freeswitch/autoload_configs/event_socket.conf.xml",
        "t30_weak_pw",
        True,
        """
        <configuration name="event_socket.conf" description="Socket Client">
          <settings>
            <param name="nat-map" value="false"/>
            <param name="listen-ip" value="0.0.0.0"/>
            <param name="listen-port" value="8021"/>
            <param name="password" value="{V}"/>
            <param name="apply-inbound-acl" value="lan"/>
          </settings>
        </configuration>
        """,
    ),
    _t(
        "voip/freeswitch/sip_profiles/external/transit.xml",
        "t30_sip_pw",
        True,
        """
        <include>
          <gateway name="transit-carrier">
            <param name="username" value="nvt_trunk_02"/>
            <param name="password" value="{V}"/>
            <param name="realm" value="sbc.transit-carrier.net"/>
            <param name="proxy" value="sbc.transit-carrier.net"/>
            <param name="register" value="true"/>
            <param name="expire-seconds" value="600"/>
          </gateway>
        </include>
        """,
    ),
    _t(
        "voip/freeswitch/directory/default/1001.xml",
        "t30_env_ref",
        False,
        """
        <include>
          <user id="1001">
            <params>
              <!-- rendered from provisioning; value here is the template marker -->
              <param name="password" value="{V}"/>
              <param name="vm-password" value="{V2}"/>
            </params>
            <variables>
              <variable name="user_context" value="default"/>
              <variable name="effective_caller_id_name" value="NOC desk"/>
            </variables>
          </user>
        </include>
        """,
    ),
    _t(
        "voip/kamailio/kamailio-local.cfg",
        "t30_url_pw",
        True,
        """
        #!define DBURL "mysql://kamailio:{V}@sip-db01.nvt.internal/kamailio"
        #!define WITH_MYSQL
        #!define WITH_AUTH
        #!define WITH_USRLOCDB
        #!define WITH_NAT

        listen=udp:10.80.0.10:5060 advertise 194.18.40.10:5060
        listen=tls:10.80.0.10:5061 advertise 194.18.40.10:5061
        """,
    ),
    _t(
        "voip/logs/sip-trace-regfail.txt",
        "t30_sip_nonce",
        False,
        """
        REGISTER sip:voip.norrvik-telecom.se SIP/2.0
        Via: SIP/2.0/UDP 192.168.1.44:5060;branch=z9hG4bK-524287-1
        From: <sip:4687101234@voip.norrvik-telecom.se>;tag=as6f1e
        To: <sip:4687101234@voip.norrvik-telecom.se>
        Call-ID: 1d7e9a0c-44f1@192.168.1.44
        CSeq: 2 REGISTER
        Authorization: Digest username="4687101234", realm="voip.norrvik-telecom.se", nonce="{V}", uri="sip:voip.norrvik-telecom.se", response="{V2}", algorithm=MD5

        SIP/2.0 403 Forbidden
        Reason: Q.850;cause=21;text="bad credentials"
        """,
    ),
    _t(
        "voip/provisioning/templates/yealink/y000000000028.cfg",
        "t30_sip_pw",
        True,
        """
        #!version:1.0.0.1
        ## pre-staged handset for the Norrvik Kommun rollout (ticket VOIP-903), batch 4
        account.1.enable = 1
        account.1.label = Reception
        account.1.auth_name = 4687101234
        account.1.user_name = 4687101234
        account.1.password = {V}
        account.1.sip_server.1.address = voip.norrvik-telecom.se
        account.1.sip_server.1.transport_type = 2
        static.security.user_password = admin:{V2}
        """,
    ),
    _t(
        "voip/provisioning/templates/yealink/common.cfg.j2",
        "t30_jinja_ref",
        False,
        """
        #!version:1.0.0.1
        account.1.enable = 1
        account.1.auth_name = {{ ext.number }}
        account.1.password = {V}
        account.1.sip_server.1.address = voip.norrvik-telecom.se
        static.security.user_password = admin:{V2}
        """,
    ),
    _t(
        "voip/sbc/ribbon-sbc-backup-notes.md",
        "t30_pw",
        True,
        """
        # SBC backup/restore notes (VOIP-1020)

        - The SBC web UI admin is `admin` and the password was rotated on 2025-03-02 to
          `{V}` — still need to move this into the NOC vault.
        - The CLI `linuxadmin` password is `{V2}` (it is not the same as the UI one).
        - Backups go to sftp://sbc-backup.nvt.internal/ via the `sbcbackup` account.
        """,
    ),
    # ================================================================ STB / middleware
    _t(
        "iptv/stb-provisioner/config/production.json",
        "t30_hmac_secret",
        True,
        """
        {
          "middleware": {
            "baseUrl": "https://mw.iptv.norrvik.se/api/v2",
            "operatorId": "NVT",
            "apiSecret": "{V}"
          },
          "drm": {
            "licenseProxy": "https://drm.iptv.norrvik.se/wv",
            "signingKey": "{V2}"
          },
          "multicast": {
            "defaultGroup": "239.10.1.1",
            "ssmSource": "10.90.0.5"
          }
        }
        """,
    ),
    _t(
        "iptv/stb-provisioner/config/default.json",
        "t30_env_ref",
        False,
        """
        {
          "middleware": {
            "baseUrl": "https://mw-staging.iptv.norrvik.se/api/v2",
            "operatorId": "NVT",
            "apiSecret": "{V}"
          },
          "drm": {
            "licenseProxy": "https://drm-staging.iptv.norrvik.se/wv",
            "signingKey": "{V2}"
          }
        }
        """,
    ),
    _t(
        "iptv/stb-provisioner/test/provision.test.ts",
        "t30_fake",
        False,
        """
        import { describe, expect, it } from "vitest";
        import { signRequest } from "../src/sign";

        describe("signRequest", () => {
          it("adds the HMAC header", () => {
            const req = signRequest({ path: "/devices", body: "{}" }, "{V}");
            expect(req.headers["X-NVT-Signature"]).toMatch(/^[0-9a-f]{64}$/);
          });
        });
        """,
    ),
    _t(
        "iptv/stb-firmware/build.sh",
        "t30_pw",
        True,
        """
        #!/bin/sh
        # builds the signed STB image; the signing key passphrase is needed by the vendor tool
        set -eu
        VERSION="$1"
        ./vendor/amlogic/aml_sign_tool --in "out/nvt-stb-${VERSION}.img" \\
            --key keys/nvt_stb_sign.pem \\
            --passphrase '{V}' \\
            --out "out/nvt-stb-${VERSION}.signed.img"
        sha256sum "out/nvt-stb-${VERSION}.signed.img" > "out/nvt-stb-${VERSION}.sha256"
        """,
    ),
    _t(
        "iptv/stb-firmware/SHA256SUMS",
        "t30_sha256_hex",
        False,
        """
        {V}  nvt-stb-4.12.0.signed.img
        {V2}  nvt-stb-4.12.1.signed.img
        {V3}  nvt-stb-4.13.0-rc2.signed.img
        """,
    ),
    _t(
        "iptv/stb-inventory/devices-batch-0319.csv",
        "t30_cpe_serial",
        False,
        """
        serial,model,mac,customer_ref,status
        {V},NVT-STB-4K,00:1a:2b:3c:4d:5e,C-0044182,shipped
        {V2},NVT-STB-4K,00:1a:2b:3c:4d:5f,C-0044190,shipped
        {V3},NVT-STB-HD,00:1a:2b:3c:4d:60,C-0044203,returned
        """,
    ),
    # ================================================================ ACS / TR-069
    _t(
        "acs/genieacs/genieacs.env",
        "t30_genie_jwt_secret",
        True,
        """
        GENIEACS_CWMP_ACCESS_LOG_FILE=/var/log/genieacs/genieacs-cwmp-access.log
        GENIEACS_NBI_ACCESS_LOG_FILE=/var/log/genieacs/genieacs-nbi-access.log
        GENIEACS_FS_ACCESS_LOG_FILE=/var/log/genieacs/genieacs-fs-access.log
        GENIEACS_UI_ACCESS_LOG_FILE=/var/log/genieacs/genieacs-ui-access.log
        GENIEACS_DEBUG_FILE=/var/log/genieacs/genieacs-debug.yaml
        GENIEACS_EXT_DIR=/opt/genieacs/ext
        GENIEACS_UI_JWT_SECRET={V}
        GENIEACS_MONGODB_CONNECTION_URL=mongodb://acs-mongo01.nvt.internal/genieacs
        """,
    ),
    _t(
        "acs/genieacs/provisions/default.js",
        "t30_pw",
        True,
        """
        // GenieACS provision: set the connection request credentials on every CPE
        const now = Date.now();
        declare("InternetGatewayDevice.ManagementServer.ConnectionRequestUsername", {value: now}, {value: "nvt-acs"});
        declare("InternetGatewayDevice.ManagementServer.ConnectionRequestPassword", {value: now}, {value: "{V}"});
        declare("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", {value: now}, {value: 3600});
        declare("InternetGatewayDevice.ManagementServer.Password", {value: now}, {value: "{V2}"});
        """,
    ),
    _t(
        "acs/genieacs/provisions/wifi-defaults.js",
        "t30_js_ref",
        False,
        """
        // Wi-Fi defaults for new CPEs; the per-device PSK comes from the preset args
        const psk = args[0] || {V};
        const ssid = "NVT-" + declare("DeviceID.SerialNumber", {value: 1}).value[0].slice(-6);
        declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", {value: Date.now()}, {value: ssid});
        declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.KeyPassphrase", {value: Date.now()}, {value: psk});
        """,
    ),
    _t(
        "acs/cpe-configs/zte-f680-default.xml",
        "t30_weak_pw",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- factory-override config loaded at first boot on NVT-branded ONTs -->
        <DB>
          <Tbl name="DevAuthInfo">
            <Row No="0"><DM name="User" val="admin"/><DM name="Pass" val="{V}"/><DM name="Level" val="1"/></Row>
            <Row No="1"><DM name="User" val="nvtsupport"/><DM name="Pass" val="{V2}"/><DM name="Level" val="0"/></Row>
          </Tbl>
          <Tbl name="MgtServer">
            <Row No="0">
              <DM name="URL" val="https://acs.norrvik-telecom.se:7547/"/>
              <DM name="ConnReqUserName" val="nvt-acs"/>
              <DM name="ConnReqPassword" val="{V3}"/>
            </Row>
          </Tbl>
        </DB>
        """,
    ),
    _t(
        "acs/cpe-configs/inform-sample.xml",
        "t30_cpe_serial",
        False,
        """
        <soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0">
          <soap-env:Body>
            <cwmp:Inform>
              <DeviceId>
                <Manufacturer>ZTE</Manufacturer>
                <OUI>D47226</OUI>
                <ProductClass>F680</ProductClass>
                <SerialNumber>{V}</SerialNumber>
              </DeviceId>
              <Event><EventStruct><EventCode>0 BOOTSTRAP</EventCode></EventStruct></Event>
              <ParameterList>
                <ParameterValueStruct><Name>InternetGatewayDevice.DeviceInfo.SerialNumber</Name><Value>{V}</Value></ParameterValueStruct>
                <ParameterValueStruct><Name>InternetGatewayDevice.ManagementServer.ConnectionRequestURL</Name><Value>http://100.72.14.9:58000/</Value></ParameterValueStruct>
              </ParameterList>
            </cwmp:Inform>
          </soap-env:Body>
        </soap-env:Envelope>
        """,
    ),
    _t(
        "acs/nbi-scripts/reboot_batch.sh",
        "t30_b64_basic",
        True,
        """
        #!/bin/bash
        # reboot a list of CPEs through the GenieACS NBI (behind the nginx basic-auth proxy)
        while read -r serial; do
          curl -s -X POST \\
            -H "Authorization: Basic {V}" \\
            "https://acs-nbi.nvt.internal/devices/${serial}/tasks?connection_request" \\
            -d '{"name":"reboot"}'
        done < "${1:-serials.txt}"
        """,
    ),
    _t(
        "acs/nbi-scripts/reboot_batch.ps1",
        "t30_ps_ref",
        False,
        """
        # Windows version for the field team laptops
        param([string]$SerialFile = "serials.txt")
        $pair = "nbi-ops:" + {V}
        $auth = [Convert]::ToBase64String([Text.Encoding]::ASCII.GetBytes($pair))
        Get-Content $SerialFile | ForEach-Object {
            Invoke-RestMethod -Method Post -Uri "https://acs-nbi.nvt.internal/devices/$_/tasks?connection_request" `
                -Headers @{ Authorization = "Basic $auth" } -Body '{"name":"reboot"}'
        }
        """,
    ),
    # ================================================================ self-care mobile / web
    _t(
        "selfcare/app/.env.production",
        "t30_google_key",
        True,
        """
        EXPO_PUBLIC_API_BASE=https://api.norrvik-telecom.se/selfcare/v3
        EXPO_PUBLIC_SENTRY_DSN=https://o4507.ingest.sentry.io/4507113
        GOOGLE_GEOCODING_SERVER_KEY={V}
        COVERAGE_TILES_URL=https://tiles.norrvik-telecom.se/coverage/{z}/{x}/{y}.png
        """,
    ),
    _t(
        "selfcare/app/src/config/mapbox.ts",
        "t30_mapbox_pk",
        False,
        """
        // Public token (URL-restricted to our domains) for the coverage map; safe to ship in the app.
        export const MAPBOX_PUBLIC_TOKEN = "{V}";
        export const COVERAGE_STYLE = "mapbox://styles/norrvik-gis/clt7coverage";
        """,
    ),
    _t(
        "selfcare/tools/upload-coverage-tiles.ts",
        "t30_mapbox_sk",
        True,
        """
        import { createReadStream } from "node:fs";
        import mbxUploads from "@mapbox/mapbox-sdk/services/uploads";

        // secret token with uploads:write — used from the GIS workstation only
        const uploads = mbxUploads({ accessToken: "{V}" });

        await uploads.createUpload({
          tileset: "norrvik-gis.coverage-5g",
          url: await stage(createReadStream("out/coverage-5g.mbtiles")),
          name: "coverage 5G",
        }).send();
        """,
    ),
    _t(
        "selfcare/android/keystore.properties",
        "t30_pw",
        True,
        """
        storeFile=../keystores/nvt-selfcare-release.jks
        storePassword={V}
        keyAlias=nvt-selfcare
        keyPassword={V2}
        """,
    ),
    _t(
        "selfcare/android/app/build.gradle.kts",
        "t30_kts_ref",
        False,
        """
        android {
            namespace = "se.norrvik.selfcare"
            signingConfigs {
                create("release") {
                    storeFile = file(System.getenv("NVT_KEYSTORE") ?: "../keystores/debug.jks")
                    storePassword = {V}
                    keyAlias = "nvt-selfcare"
                    keyPassword = {V2}
                }
            }
        }
        """,
    ),
    _t(
        "selfcare/android/app/src/main/res/values-sv/strings.xml",
        "t30_i18n",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <string name="login_password_hint">Lösenord</string>
            <string name="error_password_too_short">{V}</string>
            <string name="error_wrong_password">{V2}</string>
            <string name="forgot_password">{V3}</string>
        </resources>
        """,
    ),
    _t(
        "selfcare/ios/fastlane/AuthKey_push.p8",
        "t30_p8_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "selfcare/ios/fastlane/.env.default",
        "t30_pw",
        True,
        """
        MATCH_GIT_URL=git@gitlab.nvt.internal:mobile/certificates.git
        MATCH_PASSWORD={V}
        FASTLANE_USER=mobile-ci@norrvik-telecom.se
        FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD={V2}
        """,
    ),
    _t(
        "selfcare/bff/src/push/fcm.ts",
        "t30_fcm_key",
        True,
        """
        import fetch from "node-fetch";

        // legacy FCM HTTP API; migrate to v1 before the shutdown (SC-2210)
        const SERVER_KEY = "{V}";

        export async function sendOutageNotice(tokens: string[], area: string) {
          await fetch("https://fcm.googleapis.com/fcm/send", {
            method: "POST",
            headers: { Authorization: `key=${SERVER_KEY}`, "Content-Type": "application/json" },
            body: JSON.stringify({ registration_ids: tokens, notification: { title: "Driftstörning", body: area } }),
          });
        }
        """,
    ),
    _t(
        "selfcare/bff/src/auth/session.ts",
        "t30_js_ref",
        False,
        """
        import session from "express-session";

        export const sessionMiddleware = session({
          name: "nvt.sid",
          secret: {V},
          resave: false,
          saveUninitialized: false,
          cookie: { secure: true, httpOnly: true, sameSite: "lax", maxAge: 1000 * 60 * 30 },
        });
        """,
    ),
    _t(
        "selfcare/bff/.env",
        "t30_jwt_secret",
        True,
        """
        NODE_ENV=production
        PORT=8080
        SESSION_SECRET={V}
        BSS_API_URL=https://bss-api.nvt.internal
        PARTNER_HMAC_SECRET={V2}
        """,
    ),
    _t(
        "selfcare/web/src/components/ChangePassword.vue",
        "t30_i18n",
        False,
        """
        <template>
          <form @submit.prevent="submit">
            <label for="pw">Nytt lösenord</label>
            <input id="pw" v-model="password" type="password" autocomplete="new-password" />
            <p v-if="tooShort" class="error">{V}</p>
            <p v-if="failed" class="error">{V2}</p>
            <button type="submit">Spara</button>
          </form>
        </template>
        """,
    ),
]
TEMPLATES += [
    # ================================================================ wholesale partner APIs
    _t(
        "wholesale/partner-api/openapi.yaml",
        "t30_partner_example",
        False,
        """
        openapi: 3.0.3
        info:
          title: Norrvik Wholesale Access API
          version: 2.4.0
        components:
          securitySchemes:
            apiKey:
              type: apiKey
              in: header
              name: X-NVT-Partner-Key
        paths:
          /v2/orders:
            post:
              summary: Order a bitstream access line
              parameters:
                - in: header
                  name: X-NVT-Partner-Key
                  required: true
                  schema: { type: string }
                  example: {V}
        """,
    ),
    _t(
        "wholesale/partner-api/config/partners.prod.yaml",
        "t30_partner_key",
        True,
        """
        partners:
          - id: fibra-nord
            name: Fibra Nord AB
            api_key: {V}
            rate_limit_per_min: 120
          - id: kustnet
            name: Kustnet Bredband
            api_key: {V2}
            rate_limit_per_min: 60
        """,
    ),
    _t(
        "wholesale/partner-api/config/partners.dev.yaml",
        "t30_fake",
        False,
        """
        # local development partners; keys are accepted only by the dev stub
        partners:
          - id: dev-partner
            name: Dev Partner
            api_key: {V}
            rate_limit_per_min: 1000
          - id: contract-tests
            name: Pact contract tests
            api_key: {V2}
        """,
    ),
    _t(
        "wholesale/partner-clients/fibra_nord_client.rb",
        "t30_hmac_secret",
        True,
        """
        require "openssl"
        require "net/http"

        # Fibra Nord sends us line faults; we sign our callbacks with their shared secret.
        module FibraNord
          SHARED_SECRET = "{V}"
          CALLBACK_URL = URI("https://api.fibranord.se/nvt/callbacks")

          def self.post(event)
            body = event.to_json
            sig = OpenSSL::HMAC.hexdigest("SHA256", SHARED_SECRET, body)
            req = Net::HTTP::Post.new(CALLBACK_URL, "Content-Type" => "application/json", "X-Signature" => sig)
            req.body = body
            Net::HTTP.start(CALLBACK_URL.host, 443, use_ssl: true) { |http| http.request(req) }
          end
        end
        """,
    ),
    _t(
        "wholesale/partner-clients/kustnet_oauth.cs",
        "t30_azure_secret",
        True,
        """
        using System.Net.Http;
        using Microsoft.Identity.Client;

        namespace Norrvik.Wholesale.Partners;

        // Kustnet exposes its trouble-ticket API behind their Entra ID tenant.
        public static class KustnetAuth
        {
            private const string TenantId = "6f2d3c1a-8b7e-4d5f-9a0b-1c2d3e4f5a6b";
            private const string ClientId = "0b9a8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d";
            private const string ClientSecret = "{V}";

            public static IConfidentialClientApplication Build() =>
                ConfidentialClientApplicationBuilder.Create(ClientId)
                    .WithClientSecret(ClientSecret)
                    .WithAuthority($"https://login.microsoftonline.com/{TenantId}")
                    .Build();
        }
        """,
    ),
    _t(
        "wholesale/postman/NVT-Wholesale.postman_collection.json",
        "t30_jwt",
        True,
        """
        {
          "info": { "name": "NVT Wholesale (prod)", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json" },
          "auth": {
            "type": "bearer",
            "bearer": [ { "key": "token", "value": "{V}", "type": "string" } ]
          },
          "item": [
            { "name": "List orders", "request": { "method": "GET", "url": "https://wholesale-api.norrvik-telecom.se/v2/orders?status=open" } }
          ]
        }
        """,
    ),
    _t(
        "wholesale/postman/NVT-Wholesale.postman_environment.json",
        "t30_yaml_ref",
        False,
        """
        {
          "name": "NVT Wholesale - template",
          "values": [
            { "key": "baseUrl", "value": "https://wholesale-api.norrvik-telecom.se", "enabled": true },
            { "key": "partnerKey", "value": "{V}", "enabled": true },
            { "key": "token", "value": "{V2}", "enabled": true }
          ]
        }
        """,
    ),
    _t(
        "wholesale/docs/authentication.md",
        "t30_partner_example",
        False,
        """
        # Authenticating to the Wholesale API

        Every request carries your partner key in the `X-NVT-Partner-Key` header:

        ```http
        GET /v2/orders HTTP/1.1
        Host: wholesale-api.norrvik-telecom.se
        X-NVT-Partner-Key: {V}
        ```

        The key above is a documentation value; the sandbox at
        `https://sandbox.wholesale-api.norrvik-telecom.se` also accepts `{V2}` for read-only calls
        against synthetic data.
        """,
    ),
    _t(
        "wholesale/partner-api/src/test/resources/application-test.yml",
        "t30_fake",
        False,
        """
        nvt:
          partners:
            signing-secret: {V}
            keys:
              dev-partner: {V2}
        spring:
          datasource:
            url: jdbc:h2:mem:partners
            username: sa
            password: ""
        """,
    ),
    # ================================================================ infra: terraform / k8s / helm
    _t(
        "infra/terraform/envs/prod/terraform.tfvars",
        "t30_pw",
        True,
        """
        region              = "eu-north-1"
        environment         = "prod"
        cdr_bucket          = "nvt-cdr-lake"
        rds_master_username = "nvtadmin"
        rds_master_password = "{V}"
        grafana_admin_pass  = "{V2}"
        """,
    ),
    _t(
        "infra/terraform/modules/rds/main.tf",
        "t30_small",
        False,
        """
        resource "random_password" "master" {
          length  = 32
          special = false
        }

        resource "aws_db_instance" "bss" {
          identifier              = "nvt-${var.environment}-bss"
          engine                  = "postgres"
          instance_class          = "db.r6g.large"
          username                = var.master_username
          password                = random_password.master.result
          backup_retention_period = {V}
          storage_encrypted       = true
        }
        """,
    ),
    _t(
        "infra/terraform/envs/prod/providers.tf",
        "t30_aws_ini_pair",
        True,
        """
        provider "aws" {
          region = "eu-north-1"
          # temporary while the CI OIDC role is being set up (INFRA-410)
          # {V}
        }

        provider "netbox" {
          server_url = "https://netbox.nvt.internal"
        }
        """,
    ),
    _t(
        "infra/k8s/smsgw/secret.yaml",
        "t30_b64_pw",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: smsgw-smpp-credentials
          namespace: smsgw
        type: Opaque
        data:
          SMPP_SYSTEM_ID: TlZUMDQxNw==
          SMPP_PASSWORD: {V}
          ADMIN_PASSWORD: {V2}
        """,
    ),
    _t(
        "infra/k8s/smsgw/sealed-secret.yaml",
        "t30_sealed",
        False,
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: smsgw-smpp-credentials
          namespace: smsgw
        spec:
          encryptedData:
            SMPP_PASSWORD: {V}
            ADMIN_PASSWORD: {V2}
          template:
            metadata:
              name: smsgw-smpp-credentials
        """,
    ),
    _t(
        "infra/k8s/acs/deployment.yaml",
        "t30_secret_name",
        False,
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: genieacs-cwmp
          namespace: acs
        spec:
          replicas: 3
          template:
            spec:
              containers:
                - name: cwmp
                  image: registry.nvt.internal/acs/genieacs:1.2.13
                  env:
                    - name: GENIEACS_UI_JWT_SECRET
                      valueFrom:
                        secretKeyRef:
                          name: {V}
                          key: jwt-secret
                    - name: ACS_CR_PASSWORD
                      valueFrom:
                        secretKeyRef:
                          name: {V2}
                          key: password
        """,
    ),
    _t(
        "infra/helm/radius/values-prod.yaml",
        "t30_shared_secret",
        True,
        """
        replicaCount: 2
        image:
          repository: registry.nvt.internal/aaa/freeradius
          tag: 3.2.6-nvt3
        radius:
          clients:
            - name: bng-sthlm-01
              ip: 10.40.1.11
              secret: {V}
            - name: bng-upps-02
              ip: 10.40.2.11
              secret: {V2}
        """,
    ),
    _t(
        "infra/helm/radius/values.yaml",
        "t30_yaml_ref",
        False,
        """
        replicaCount: 1
        image:
          repository: registry.nvt.internal/aaa/freeradius
          tag: latest
        radius:
          clients:
            - name: lab-bng
              ip: 10.250.1.1
              secret: "{V}"
        sql:
          password: "{V2}"
        """,
    ),
    _t(
        "infra/helm/radius/templates/tls-secret.yaml",
        "t30_ec_pem",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: radsec-tls
        type: kubernetes.io/tls
        stringData:
          tls.crt: |
            -----BEGIN CERTIFICATE-----
            (see radsec.crt in the PKI repo)
            -----END CERTIFICATE-----
          tls.key: |
            {IV}
        """,
    ),
    _t(
        "infra/pki/radsec-ca.pem",
        "t30_certificate",
        False,
        """
        {V}
        """,
    ),
    _t(
        "infra/pki/bss-api-signing.pub.pem",
        "t30_public_pem",
        False,
        """
        {V}
        """,
    ),
    _t(
        "infra/pki/wholesale-mtls-client.key",
        "t30_rsa_pem",
        True,
        """
        {V}
        """,
    ),
    _t(
        "infra/docker/registry-auth/config.json",
        "t30_docker_auth",
        True,
        """
        {
          "auths": {
            "registry.nvt.internal": {
              "auth": "{V}"
            },
            "harbor.iptv.norrvik.se": {
              "auth": "{V2}"
            }
          }
        }
        """,
    ),
    _t(
        "infra/docker/smsgw/Dockerfile",
        "t30_pw",
        True,
        """
        FROM debian:bookworm-slim
        RUN apt-get update && apt-get install -y --no-install-recommends kannel && rm -rf /var/lib/apt/lists/*
        ENV KANNEL_ADMIN_PASSWORD={V}
        COPY kannel.conf /etc/kannel/kannel.conf
        EXPOSE 13000 13013
        CMD ["bearerbox", "-v", "1", "/etc/kannel/kannel.conf"]
        """,
    ),
    _t(
        "infra/docker/acs/Dockerfile",
        "t30_image_digest",
        False,
        """
        FROM node:20-bookworm-slim@{V} AS build
        WORKDIR /opt/genieacs
        COPY package*.json ./
        RUN npm ci --omit=dev
        FROM gcr.io/distroless/nodejs20-debian12@{V2}
        COPY --from=build /opt/genieacs /opt/genieacs
        CMD ["/opt/genieacs/bin/genieacs-cwmp"]
        """,
    ),
    _t(
        "infra/compose/lab-voip/docker-compose.yml",
        "t30_weak_pw",
        True,
        """
        services:
          mariadb:
            image: mariadb:11
            environment:
              MARIADB_ROOT_PASSWORD: {V}
              MARIADB_DATABASE: kamailio
              MARIADB_USER: kamailio
              MARIADB_PASSWORD: {V2}
          kamailio:
            image: ghcr.io/kamailio/kamailio:5.8
            depends_on: [mariadb]
            ports: ["5060:5060/udp"]
        """,
    ),
    _t(
        "infra/compose/lab-aaa/docker-compose.yml",
        "t30_env_ref",
        False,
        """
        services:
          postgres:
            image: postgres:16
            environment:
              POSTGRES_USER: radius
              POSTGRES_PASSWORD: {V}
          freeradius:
            image: freeradius/freeradius-server:3.2.6
            environment:
              RADIUS_CLIENT_SECRET: {V2}
            ports: ["1812:1812/udp", "1813:1813/udp"]
        """,
    ),
    # ================================================================ CI
    _t(
        ".gitlab-ci.yml",
        "t30_gitlab",
        True,
        """
        stages: [build, deploy]

        variables:
          # deploy token for pulling the shared ansible roles (NETOPS-900); move to CI vars
          ROLES_TOKEN: "{V}"

        build:
          stage: build
          image: python:3.12
          script:
            - git clone "https://gitlab-ci-token:${ROLES_TOKEN}@gitlab.nvt.internal/netops/roles.git"
            - pip install -r requirements.txt
            - ansible-lint playbooks/
        """,
    ),
    _t(
        "netauto/.gitlab-ci.yml",
        "t30_ci_ref",
        False,
        """
        deploy:
          stage: deploy
          image: registry.nvt.internal/netops/ansible:9
          variables:
            ANSIBLE_PASSWORD: "{V}"
            NETBOX_TOKEN: "{V2}"
          script:
            - ansible-playbook -i inventories/prod playbooks/site.yml --limit "$LIMIT"
          when: manual
        """,
    ),
    _t(
        ".github/workflows/selfcare-release.yml",
        "t30_npm",
        True,
        """
        name: selfcare release
        on:
          push:
            tags: ["v*"]
        jobs:
          publish-sdk:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: actions/setup-node@v4
                with: { node-version: 20, registry-url: "https://registry.npmjs.org" }
              - run: npm ci && npm run build -w packages/selfcare-sdk
              - run: npm publish -w packages/selfcare-sdk --access public
                env:
                  NODE_AUTH_TOKEN: {V}
        """,
    ),
    _t(
        ".github/workflows/cdr-ci.yml",
        "t30_ci_ref",
        False,
        """
        name: cdr-ci
        on: [push, pull_request]
        jobs:
          test:
            runs-on: ubuntu-latest
            services:
              clickhouse:
                image: clickhouse/clickhouse-server:24.3
            steps:
              - uses: actions/checkout@v4
              - run: cargo test --manifest-path cdr/rater-rs/Cargo.toml
                env:
                  KAFKA_PASSWORD: {V}
                  SLACK_WEBHOOK: {V2}
        """,
    ),
    _t(
        "ci/jenkins/Jenkinsfile.netbackup",
        "t30_github",
        True,
        """
        pipeline {
          agent { label 'netops' }
          environment {
            // pushes the nightly config diff to the GitHub mirror used by the vendor TAC
            GH_TOKEN = '{V}'
          }
          stages {
            stage('Backup') {
              steps {
                sh 'python3 nornir/run_backup.py'
                sh 'git -C backups push https://x-access-token:${GH_TOKEN}@github.com/norrvik-telecom/net-backups.git HEAD:main'
              }
            }
          }
        }
        """,
    ),
    _t(
        "ci/jenkins/Jenkinsfile.deploy-radius",
        "t30_secret_name",
        False,
        """
        pipeline {
          agent { label 'aaa' }
          stages {
            stage('Deploy') {
              steps {
                withCredentials([string(credentialsId: '{V}', variable: 'RADIUS_SECRET')]) {
                  sh 'helm upgrade --install radius infra/helm/radius --set radius.clients[0].secret="$RADIUS_SECRET"'
                }
              }
            }
          }
        }
        """,
    ),
]
TEMPLATES += [
    # ================================================================ monitoring / alerting
    _t(
        "noc/alerting/alertmanager.yml",
        "t30_slack_webhook",
        True,
        """
        route:
          receiver: noc-slack
          group_by: [alertname, site]
          routes:
            - matchers: [severity="critical"]
              receiver: noc-pager
        receivers:
          - name: noc-slack
            slack_configs:
              - api_url: {V}
                channel: "#noc-alerts"
                send_resolved: true
          - name: noc-pager
            pagerduty_configs:
              - routing_key_file: /etc/alertmanager/secrets/pd-routing-key
        """,
    ),
    _t(
        "noc/alerting/alertmanager.tmpl.yml",
        "t30_yaml_ref",
        False,
        """
        receivers:
          - name: noc-slack
            slack_configs:
              - api_url: "{V}"
                channel: "#noc-alerts"
          - name: noc-pager
            pagerduty_configs:
              - routing_key: "{V2}"
        """,
    ),
    _t(
        "noc/alerting/pagerduty_bridge.go",
        "t30_pd_routing",
        True,
        """
        package main

        import (
        	"bytes"
        	"encoding/json"
        	"net/http"
        )

        // Events v2 routing keys per NOC service
        var routingKeys = map[string]string{
        	"core-network": "{V}",
        	"aaa":          "{V2}",
        }

        func trigger(service, summary string) error {
        	body, _ := json.Marshal(map[string]any{
        		"routing_key":  routingKeys[service],
        		"event_action": "trigger",
        		"payload":      map[string]string{"summary": summary, "source": "nvt-noc", "severity": "critical"},
        	})
        	_, err := http.Post("https://events.pagerduty.com/v2/enqueue", "application/json", bytes.NewReader(body))
        	return err
        }
        """,
    ),
    _t(
        "noc/alerting/telegram_fieldteam.py",
        "t30_telegram",
        True,
        """
        # posts fibre-cut alerts to the field team's Telegram group (they don't use Slack)
        import requests

        BOT_TOKEN = "{V}"
        CHAT_ID = -1002213344556


        def notify(text: str) -> None:
            requests.post(
                f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage",
                json={"chat_id": CHAT_ID, "text": text},
                timeout=10,
            )
        """,
    ),
    _t(
        "noc/alerting/teams_notify.ps1",
        "t30_teams_webhook",
        True,
        """
        # Change-window notices to the "NOC Changes" Teams channel
        param([Parameter(Mandatory)] [string]$Message)
        $Webhook = "{V}"
        $Body = @{ text = $Message } | ConvertTo-Json
        Invoke-RestMethod -Uri $Webhook -Method Post -ContentType 'application/json' -Body $Body
        """,
    ),
    _t(
        "noc/grafana/provisioning/datasources/clickhouse.yaml",
        "t30_pw",
        True,
        """
        apiVersion: 1
        datasources:
          - name: CDR ClickHouse
            type: grafana-clickhouse-datasource
            jsonData:
              host: ch01.nvt.internal
              port: 9000
              username: grafana
              protocol: native
            secureJsonData:
              password: {V}
        """,
    ),
    _t(
        "noc/grafana/provisioning/datasources/postgres.yaml",
        "t30_env_ref",
        False,
        """
        apiVersion: 1
        datasources:
          - name: Orders
            type: postgres
            url: om-db.nvt.internal:5432
            user: grafana_ro
            jsonData:
              database: orders
              sslmode: require
            secureJsonData:
              password: {V}
        """,
    ),
    _t(
        "noc/grafana/dashboards-sync.sh",
        "t30_grafana",
        True,
        """
        #!/usr/bin/env bash
        # export dashboards to git every night
        GRAFANA=https://grafana.nvt.internal
        TOKEN={V}
        mkdir -p dashboards
        for uid in $(curl -s -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/search?type=dash-db" | jq -r '.[].uid'); do
          curl -s -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/dashboards/uid/$uid" | jq .dashboard > "dashboards/$uid.json"
        done
        """,
    ),
    _t(
        "noc/datadog/conf.d/snmp.d/conf.yaml",
        "t30_shared_secret",
        True,
        """
        init_config:
          loader: core
        instances:
          - ip_address: 10.40.1.11
            snmp_version: 3
            user: dd-snmp
            authProtocol: SHA
            authKey: {V}
            privProtocol: AES
            privKey: {V2}
            tags: [site:sthlm, role:bng]
        """,
    ),
    _t(
        "noc/datadog/datadog.yaml",
        "t30_dd_api",
        True,
        """
        api_key: {V}
        site: datadoghq.eu
        hostname_fqdn: true
        logs_enabled: true
        tags:
          - env:prod
          - team:noc
        """,
    ),
    _t(
        "noc/datadog/datadog.yaml.example",
        "t30_placeholder",
        False,
        """
        ## Set your API key here (from the NOC vault entry "datadog-agent").
        api_key: {V}
        site: datadoghq.eu
        logs_enabled: true
        """,
    ),
    _t(
        "noc/mail/sendgrid_outage_mail.py",
        "t30_sendgrid",
        True,
        """
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import Mail

        SENDGRID_API_KEY = "{V}"


        def send_outage_mail(to: list[str], area: str, eta: str) -> None:
            msg = Mail(
                from_email="driftinfo@norrvik-telecom.se",
                to_emails=to,
                subject=f"Driftstörning {area}",
                html_content=f"<p>Vi arbetar med felet. Beräknad åtgärd: {eta}</p>",
            )
            SendGridAPIClient(SENDGRID_API_KEY).send(msg)
        """,
    ),
    _t(
        "noc/vault/agent-config.hcl",
        "t30_vault_token",
        True,
        """
        # vault agent on the ansible controller — bootstrap token until AppRole is approved (SEC-331)
        vault {
          address = "https://vault.nvt.internal:8200"
        }

        auto_auth {
          method "token_file" {
            config = {
              token_file_path = "/etc/vault-agent/token"
            }
          }
        }

        # token issued 2025-02-02, period 768h
        # {V}

        template {
          source      = "/etc/vault-agent/clients.conf.ctmpl"
          destination = "/etc/freeradius/3.0/clients.conf"
        }
        """,
    ),
    _t(
        "noc/vault/policies/aaa.hcl",
        "t30_op_ref",
        False,
        """
        # read-only access for the radius hosts
        path "secret/data/aaa/*" {
          capabilities = ["read"]
        }
        # consumer reference used by the radius chart: {V}
        """,
    ),
    # ================================================================ field engineers
    _t(
        "field/scripts/olt_onboard.sh",
        "t30_weak_pw",
        True,
        """
        #!/usr/bin/env bash
        # first login to a fresh OLT before it is added to TACACS (use from the site laptop)
        # usage: olt_onboard.sh <mgmt-ip>
        set -euo pipefail
        IP="$1"
        sshpass -p '{V}' ssh -o StrictHostKeyChecking=no root@"$IP" <<'EOF2'
        terminal length 0
        display version
        EOF2
        sshpass -p '{V2}' scp -o StrictHostKeyChecking=no base-config.txt root@"$IP":/flash/
        """,
    ),
    _t(
        "field/scripts/olt_onboard_v2.sh",
        "t30_sh_ref",
        False,
        """
        #!/usr/bin/env bash
        # v2: password comes from the env or the vault CLI, never from this file
        set -euo pipefail
        IP="$1"
        OLT_PASSWORD={V}
        SSHPASS="$OLT_PASSWORD" sshpass -e ssh -o StrictHostKeyChecking=accept-new root@"$IP" 'display version'
        """,
    ),
    _t(
        "field/scripts/Set-CpeWifi.ps1",
        "t30_pw",
        True,
        """
        # Field tool: log into a customer CPE web UI and set Wi-Fi from the order sheet
        param([string]$CpeIp = "192.168.1.1", [string]$Ssid, [string]$Psk)
        $SupportUser = "nvtsupport"
        $SupportPass = ConvertTo-SecureString "{V}" -AsPlainText -Force
        $Cred = New-Object System.Management.Automation.PSCredential($SupportUser, $SupportPass)
        Invoke-WebRequest -Uri "http://$CpeIp/api/wlan" -Method Put -Credential $Cred `
            -Body (@{ ssid = $Ssid; psk = $Psk } | ConvertTo-Json) -ContentType "application/json"
        """,
    ),
    _t(
        "field/scripts/Get-OntStatus.ps1",
        "t30_ps_ref",
        False,
        """
        param([string]$Serial)
        $cred = Get-StoredCredential -Target "nvt-acs-nbi"
        $token = {V}
        Invoke-RestMethod -Uri "https://acs-nbi.nvt.internal/devices/?query={`"_id`":`"$Serial`"}" `
            -Headers @{ Authorization = "Bearer $token" }
        """,
    ),
    _t(
        "field/notes/site-visit-ornskoldsvik-cabinet-12.md",
        "t30_weak_pw",
        True,
        """
        # Cabinet 12, Örnsköldsvik — site visit 2025-03-18

        - Cabinet lock code unchanged; key box at the depot.
        - The MA5800 in the cabinet still had the factory login. Changed `root` to `{V}`
          (tell NOC, not yet in TACACS).
        - ONT on port 0/3/7 replaced, new serial logged in the order.
        - Local craft terminal user for the UPS: `admin` / `{V2}`.
        """,
    ),
    _t(
        "field/notes/splice-report-2025-w12.md",
        "t30_cpe_serial",
        False,
        """
        # Splice report week 12

        | Site | Fibre | Loss (dB) | ONT serial |
        |---|---|---|---|
        | Kramfors FTTH ring | 12/24 | 0.04 | {V} |
        | Sollefteå spur | 3/12 | 0.07 | {V2} |
        | Härnösand POP | 48/96 | 0.02 | {V3} |

        OTDR traces uploaded to the shared drive.
        """,
    ),
    _t(
        "field/notes/handover-night-shift.txt",
        "t30_pw",
        True,
        """
        NOC handover 2025-03-21 22:00

        * BNG upps-02 flapping on ae1, JTAC case open (2025-0321-00417).
        * Transit carrier portal: the login for ordering cross-connects is noc@norrvik-telecom.se
          and the password is {V} (Mats reset it today).
        * Kannel on smsgw02 restarted at 21:10 after the SMSC maintenance.
        * Remember the DR radius VM still uses the old shared secret {V2} — swap tomorrow.
        """,
    ),
    _t(
        "field/notes/handover-day-shift.txt",
        "t30_op_ref",
        False,
        """
        NOC handover 2025-03-22 07:00

        * Radius shared secret on the DR VM swapped; new value stored in {V}.
        * TACACS key rotation scheduled for Tuesday, see {V2}.
        * Nobody needs the old secrets any more — please delete any copies in personal notes.
        """,
    ),
    _t(
        "field/kit/ssh/id_ed25519_fieldkit",
        "t30_openssh_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "field/kit/ssh/authorized_keys",
        "t30_ssh_public",
        False,
        """
        {V}
        {V2}
        {V3}
        """,
    ),
    _t(
        "field/kit/README.md",
        "t30_i18n",
        False,
        """
        # Field kit laptop setup

        The CPE web UI shows these messages when something is wrong with the support login:

        - "{V}" — the support password was rotated, sync the kit.
        - "{V2}" — the account is locked after 5 attempts; wait 15 minutes.

        Never write a password into this README.
        """,
    ),
    # ================================================================ runbooks / docs / tickets / chat
    _t(
        "docs/runbooks/smsc-failover.md",
        "t30_smpp_pw",
        True,
        """
        # Runbook: SMSC failover

        1. Check `bearerbox` status on smsgw01: `curl http://localhost:13000/status`.
        2. If the primary SMSC is unreachable, edit `/etc/kannel/kannel.conf` and switch the
           smsc group to `smpp2.partner-smsc.se`, system id `NVT0417B`, password `{V}`.
        3. Restart: `systemctl restart kannel`.
        4. Tell the partner NOC on +46 8 555 010 20.
        """,
    ),
    _t(
        "docs/runbooks/radius-secret-rotation.md",
        "t30_op_ref",
        False,
        """
        # Runbook: RADIUS shared secret rotation

        1. Generate a new secret: `openssl rand -base64 24`.
        2. Store it at `{V}` and never in the repo.
        3. Run the `radius_rotate` playbook; it reads the secret from the store.
        4. Verify with `radtest -t mschap probe@nvt.net "$PROBE_PW" radius01 0 "$SECRET"`.
        """,
    ),
    _t(
        "docs/runbooks/acs-outage.html",
        "t30_pw",
        True,
        """
        <!doctype html>
        <html lang="sv">
        <head><meta charset="utf-8"><title>ACS outage runbook</title></head>
        <body>
          <h1>GenieACS outage</h1>
          <ol>
            <li>Log into the ACS UI at https://acs-ui.nvt.internal as <code>noc-admin</code>,
                password <code>{V}</code>.</li>
            <li>Check the <em>Faults</em> tab for mass connection-request failures.</li>
            <li>If MongoDB is down, fail over with <code>rs.stepDown()</code>.</li>
          </ol>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/runbooks/password-policy.html",
        "t30_i18n",
        False,
        """
        <!doctype html>
        <html lang="sv">
        <body>
          <h1>Lösenordspolicy för Mina sidor</h1>
          <p>Felmeddelanden som kunden ser:</p>
          <ul>
            <li>{V}</li>
            <li>{V2}</li>
          </ul>
          <p>Minimum length: 10 characters. Passwords are stored as argon2id hashes.</p>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/tickets/NETOPS-1142.txt",
        "t30_pw",
        True,
        """
        NETOPS-1142  Temporary access for Ericsson field engineer (microwave link Ljusdal-Järvsö)
        Status: In Progress   Assignee: noc-l2   Reporter: a.lindqvist

        Created a temp local user on mw-ljusdal-01:
            user: ericsson-tmp
            pass: {V}
        Expires 2025-04-05. Remove after the radio swap is signed off.
        """,
    ),
    _t(
        "docs/tickets/NETOPS-1150.txt",
        "t30_redacted",
        False,
        """
        NETOPS-1150  Rotate SNMP RW community on access layer
        Status: Done

        Rotated on all 412 access switches. Old community: {V}. New community: {V2}
        (see vault). Verified with the NMS poller.
        """,
    ),
    _t(
        "docs/chat/slack-noc-2025-03-10.json",
        "t30_pw",
        True,
        """
        [
          {"ts": "1741597201.000100", "user": "U05NOC1", "text": "anyone have the login for the old Zhone DSLAM in Bollnäs?"},
          {"ts": "1741597260.000200", "user": "U05NOC7", "text": "admin / {V} — it's not on TACACS, that box is from 2011"},
          {"ts": "1741597301.000300", "user": "U05NOC1", "text": "thx, in"},
          {"ts": "1741597999.000400", "user": "U05NOC7", "text": "also the ILO on the radius DR host is Administrator / {V2} if you need it"}
        ]
        """,
    ),
    _t(
        "docs/chat/slack-noc-2025-03-11.json",
        "t30_op_ref",
        False,
        """
        [
          {"ts": "1741683601.000100", "user": "U05SEC2", "text": "please stop pasting logins in here. the DSLAM and ILO creds are rotated and now in {V}"},
          {"ts": "1741683660.000200", "user": "U05NOC7", "text": "sorry! noted"},
          {"ts": "1741683701.000300", "user": "U05SEC2", "text": "the RADIUS one is at {V2}"}
        ]
        """,
    ),
    _t(
        "docs/chat/teams-fieldops-export.txt",
        "t30_weak_pw",
        True,
        """
        [2025-03-14 08:02] Jonas K.: at the Hudiksvall POP, the new Huawei switch won't take my TACACS login
        [2025-03-14 08:05] Sara M.: it's not joined yet, use the local one: admin / {V}
        [2025-03-14 08:06] Jonas K.: works. and the console server?
        [2025-03-14 08:07] Sara M.: opengear root password is {V2}
        """,
    ),
    _t(
        "docs/onboarding/new-noc-engineer.md",
        "t30_doc_example",
        False,
        """
        # New NOC engineer onboarding

        Examples in our internal docs always use obvious fake values. When you see
        `{V}` or `{V2}` in a snippet, replace it with a value from the vault —
        they are not real credentials.
        """,
    ),
    _t(
        "docs/inventory/sim-stock-2025-03.csv",
        "t30_iccid",
        False,
        """
        iccid,imsi_range_start,profile,batch,warehouse
        {V},240120004410000,nvt-4g-consumer,B2503-01,Sundsvall
        {V2},240120004420000,nvt-4g-iot,B2503-02,Sundsvall
        {V3},240120004430000,nvt-5g-consumer,B2503-03,Umeå
        """,
    ),
    _t(
        "docs/inventory/handsets-loaner.csv",
        "t30_imei",
        False,
        """
        imei,model,assigned_to,msisdn
        {V},Samsung A35,J. Korhonen,+46701112233
        {V2},iPhone 15,S. Mattsson,+46702223344
        {V3},Nokia G42,field pool,+46703334455
        """,
    ),
    _t(
        "docs/inventory/cpe-mac-reservations.yaml",
        "t30_mac",
        False,
        """
        # DHCP reservations for the business-fibre demo CPEs
        reservations:
          - mac: "{V}"
            ip: 100.72.0.10
          - mac: "{V2}"
            ip: 100.72.0.11
          - mac: "{V3}"
            ip: 100.72.0.12
        """,
    ),
]
