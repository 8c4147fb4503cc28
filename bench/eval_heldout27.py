"""Blind part ``heldout27``: a mid-sized university, Ashworth Vale University (AVU: the main
campus in England, AVU Malaysia, its international branch campus in Iskandar Puteri, Johor, and
Politechnika Warmińska in Olsztyn, its partner in Poland), as its central IT, faculty and partner
repositories would hold them. Files are the student information system (a Spring Boot records
API over Oracle, Python ETL, SQL grants and seeds, .NET reporting services, dbt models), the
research computing cluster and its HPC scheduler (Slurm and slurmdbd, JupyterHub, Open OnDemand,
Globus, LDAP/SSSD, Ansible roles, conda locks, notebooks), library systems (Alma integrations,
EZproxy, Koha, SIP2 self-check kiosks, Primo customisation), campus card and access control
(Gallagher Command Centre exports, OnGuard PowerShell, OSDP door controllers, cardholder CSVs),
the learning management systems (Moodle in England, Canvas in Malaysia, LTI 1.3 tools, Kaltura),
the alumni fundraising CRM (Raiser's Edge NXT SKY API in C#, Salesforce, Stripe donations, HMRC
Gift Aid GovTalk), campus Wi-Fi and eduroam RADIUS (FreeRADIUS clients and proxies, radsecproxy,
Cisco WLC configs, LibreNMS SNMP, wpa_supplicant profiles), labs with instruments (mass-spec and
NMR PCs, OMERO microscopy uploads, MQTT/LoRaWAN freezer monitors, MATLAB and R scripts, LabVIEW
ini files), the Malaysian campus (iPay88 and Billplz payments, Malay handover notes, helpdesk chat
exports) and the Polish partner (USOS API clients, Przelewy24, Erasmus Without Paper keys, Polish
notes and tickets), identity (Shibboleth IdP and SP, Entra ID Terraform, Duo, Active Directory,
Google Workspace GAM), and the usual platform files (GitHub Actions, Jenkins, Kubernetes, Helm,
Compose, Vault, Puppet Hiera, AWS credentials, .npmrc, lockfiles, SSH and GPG material, batch
files, runbooks and tickets). Docs are in English, Malay and Polish. Written blind (without seeing
the scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (Moodle
bcrypt, LDAP ``{SSHA}``, shadow ``$6$``, Django PBKDF2, Oracle ``S:`` verifiers, MySQL ``*``
hashes, PostgreSQL SCRAM, Cisco type 9, Keycloak credential hashes, htpasswd ``$apr1$``), values
encrypted at rest (Ansible Vault, SOPS, sealed secrets, Hiera eyaml, Jenkins ``{AQAAAB...}``,
AWS KMS blobs, encrypted PEM keys), references to environment variables and secret stores in
each language and tool, placeholders and redactions in English, Malay and Polish, public
material (certificates, SAML metadata certificates, public PEM and JWKS keys, SSH and PGP public
keys, age recipients, fingerprints, Stripe publishable keys, reCAPTCHA site keys), identifiers
shaped like secrets (student ids, MIFARE card UIDs, LoRaWAN EUIs, Salesforce record ids, ORCID
iDs, ISBNs, UUIDs, Canvas developer key ids, digests, HMRC IRmarks, lockfile checksums), UI text
about passwords in three languages, documented default and example credentials (FreeRADIUS
``testing123``, the radsec default, the OSDP install-mode key, AWS ``EXAMPLE`` keys, Slack's
sample webhook) and credentials on documentation hosts, and test values that say they are fake.
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
PW_SYMBOLS = "!#%*-_=+.@?"


class Heldout27Values(evalset.Values):
    """Value generators of the heldout27 part; every name starts with ``h27_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "quadrangle",
            "cloister",
            "lectern",
            "bursary",
            "refectory",
            "almanac",
            "chancel",
            "graduand",
            "mortarboard",
            "seminar",
            "archive",
            "orchard",
            "beacon",
            "heron",
            "tapestry",
            "meridian",
        ]
        self.users = [
            "sis_app",
            "moodle",
            "hpc_svc",
            "alma_sync",
            "cardsvc",
            "radius",
            "crm_etl",
            "labdata",
            "ldapbind",
            "svc-ci",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h27_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h27_util_armor(self, label: str, nbytes: int, width: int = 64) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h27_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h27_util_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ------------------------------------------------------------------ positives: passwords
    def h27_pw(self) -> str:
        shape = self.rng.randrange(7)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*?"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 22), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Avu" + self.s(11, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        if shape == 5:
            leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
            return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)
        return self.s(4, string.ascii_uppercase) + self.s(6, DIGITS) + self.s(5, LOWNUM)

    def h27_weak_pw(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Password123",
                    "Student1!",
                    "Library1",
                    "Moodle123!",
                    "instrument1",
                    "Qwerty123",
                    "Rahsia123",
                    "Haslo123!",
                    "letmein2",
                ]
            )
        if shape == 1:
            return "Ashworth" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "99"])
        if shape == 3:
            return self.pick(["Autumn", "Spring", "Summer", "Winter", "Michaelmas"]) + str(
                self.rng.randrange(2019, 2026)
            )
        return "Avu" + self.pick(["Lab", "Card", "Kiosk", "Nmr", "Ms"]) + self.s(3, DIGITS)

    def h27_oracle_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(9, 14), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "_", "$"]) + body[cut:] + self.s(2, DIGITS)

    def h27_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 22), ALNUM + "-_.~")

    def h27_ldap_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return "Bind-" + self.s(16, ALNUM)
        return self.s(self.rng.randrange(16, 28), ALNUM + "!%*-_+")

    def h27_radius_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(self.rng.randrange(20, 33), ALNUM)
        if shape == 1:
            return "-".join(self.pick(self.words) for _ in range(3)) + self.s(2, DIGITS)
        return self.s(self.rng.randrange(16, 25), ALNUM + "!#%&*+-=?@^_")

    def h27_snmp_community(self) -> str:
        if self.rng.randrange(2):
            return "avu" + self.pick(["RW", "ro", "Net", "Mon"]) + self.s(10, ALNUM)
        return self.s(self.rng.randrange(14, 22), ALNUM)

    def h27_wpa_psk(self) -> str:
        if self.rng.randrange(2):
            return " ".join(self.pick(self.words) for _ in range(3)) + " " + self.s(2, DIGITS)
        return self.s(self.rng.randrange(16, 30), ALNUM + "!#%+-=@")

    def h27_b64_pw(self) -> str:
        return base64.b64encode(self.h27_pw().encode()).decode()

    def h27_sf_pw_token(self) -> str:
        return self.h27_pw() + self.s(24, ALNUM)

    def h27_docker_auth(self) -> str:
        user = self.pick(["robot$avu-ci", "svc-ci", "avu-deploy", "robot$hpc-images"])
        return base64.b64encode(f"{user}:{self.s(32, ALNUM)}".encode()).decode()

    def h27_basic_b64(self) -> str:
        user = self.pick(self.users)
        return base64.b64encode(f"{user}:{self.h27_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: vendor tokens
    def h27_moodle_token(self) -> str:
        return self.s(32, HEX)

    def h27_hex32(self) -> str:
        return self.s(32, HEX)

    def h27_hex16(self) -> str:
        return self.s(16, HEX)

    def h27_hex64(self) -> str:
        return self.s(64, HEX)

    def h27_alnum32(self) -> str:
        return self.s(32, ALNUM)

    def h27_alnum40(self) -> str:
        return self.s(40, ALNUM)

    def h27_bearer(self) -> str:
        return self.s(self.rng.randrange(40, 56), URLSAFE)

    def h27_canvas_token(self) -> str:
        return f"{self.pick(['1', '7', '10', '21', '7'])}~{self.s(64, ALNUM)}"

    def h27_alma_key(self) -> str:
        return "l7xx" + self.s(32, HEX)

    def h27_duo_skey(self) -> str:
        return self.s(40, ALNUM)

    def h27_gallagher_key(self) -> str:
        return "-".join(self.s(4, HEXU) for _ in range(8))

    def h27_usos_secret(self) -> str:
        return self.s(40, ALNUM)

    def h27_ipay88_key(self) -> str:
        return self.s(self.rng.randrange(10, 21), ALNUM)

    def h27_billplz_key(self) -> str:
        return self.h27_util_uuid()

    def h27_splunk_hec(self) -> str:
        value = self.h27_util_uuid()
        return value.upper() if self.rng.randrange(2) else value

    def h27_globus_secret(self) -> str:
        return self.h27_util_b64(32)

    def h27_b64_secret(self) -> str:
        return self.h27_util_b64(self.pick([32, 48]))

    def h27_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h27_sf_secret(self) -> str:
        return self.s(64, HEXU)

    def h27_stripe_sk(self) -> str:
        return "sk_live_" + self.s(self.pick([24, 99]), ALNUM)

    def h27_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def h27_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h27_mailchimp(self) -> str:
        return f"{self.s(32, HEX)}-us{self.rng.randrange(1, 22)}"

    def h27_github(self) -> str:
        return self.h27_util_crc_token(self.pick(["ghp", "ghp", "gho"]))

    def h27_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h27_npm(self) -> str:
        return self.h27_util_crc_token("npm")

    def h27_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}"
            f"/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"
        )

    def h27_teams_webhook(self) -> str:
        ids = [self.h27_util_uuid() for _ in range(3)]
        return (
            f"https://ashworthvale.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def h27_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 10**10)}:AA{self.s(33, URLSAFE)}"

    def h27_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h27_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def h27_wandb(self) -> str:
        return self.s(40, HEX)

    def h27_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def h27_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h27_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "sub": self.pick(self.users),
                "iss": "sis-api.avu.ac.uk",
                "iat": 1710000000 + self.rng.randrange(10**7),
            }
        )
        return f"{header}.{payload}.{self.h27_util_b64(32, urlsafe=True, pad=False)}"

    def h27_age_key(self) -> str:
        return "AGE-SECRET-KEY-1" + self.s(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")

    def h27_aws_ini_pair(self) -> str:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        secret = self.s(40, ALNUM + "/+")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def h27_aws_env_pair(self) -> str:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        secret = self.s(40, ALNUM + "/+")
        return f"AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}"

    def h27_rsa_key(self) -> str:
        return self.h27_util_armor("RSA PRIVATE KEY", 48 * 14)

    def h27_pkcs8(self) -> str:
        return self.h27_util_armor("PRIVATE KEY", 48 * 13)

    def h27_openssh(self) -> str:
        return self.h27_util_armor("OPENSSH PRIVATE KEY", 48 * 7, width=70)

    def h27_gcp_key(self) -> str:
        return self.h27_util_armor("PRIVATE KEY", 48 * 16).replace("\n", "\\n") + "\\n"

    def h27_tableau_pat(self) -> str:
        return f"{self.h27_util_b64(16)}:{self.s(32, ALNUM)}"

    # ------------------------------------------------------------------ negatives: hashes
    def h27_bcrypt(self) -> str:
        return "$2y$10$" + self.s(53, CRYPT64)

    def h27_ssha(self) -> str:
        if self.rng.randrange(3) == 0:
            return "{SSHA512}" + self.h27_util_b64(72)
        return "{SSHA}" + self.h27_util_b64(24)

    def h27_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def h27_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$870000${self.s(22, ALNUM)}${self.h27_util_b64(32)}"

    def h27_oracle_verifier(self) -> str:
        return "S:" + self.s(60, HEXU)

    def h27_mysql_hash(self) -> str:
        return "*" + self.s(40, HEXU)

    def h27_scram(self) -> str:
        return (
            f"SCRAM-SHA-256$4096:{self.h27_util_b64(16)}$"
            f"{self.h27_util_b64(32)}:{self.h27_util_b64(32)}"
        )

    def h27_cisco_type9(self) -> str:
        return f"$9${self.s(14, CRYPT64)}${self.s(43, CRYPT64)}"

    def h27_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def h27_b64_hash(self) -> str:
        return self.h27_util_b64(64)

    def h27_b64_salt(self) -> str:
        return self.h27_util_b64(16)

    # ------------------------------------------------------------------ negatives: encrypted
    def h27_ansible_vault(self) -> str:
        body = self.s(80 * 7, HEX)
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(
            body[i : i + 80] for i in range(0, len(body), 80)
        )

    def h27_sops(self) -> str:
        data = self.h27_util_b64(self.rng.randrange(14, 40))
        iv = self.h27_util_b64(32)
        tag = self.h27_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h27_sealed(self) -> str:
        return "AgB" + self.h27_util_b64(self.pick([360, 540]))

    def h27_eyaml(self) -> str:
        return "ENC[PKCS7,MIIBiQYJKoZIhvcNAQcDoIIBejCCAXYCAQAxggEhMIIBHQIBADAFMAACAQEw" + (
            self.h27_util_b64(300) + "]"
        )

    def h27_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.h27_util_b64(self.pick([36, 48])) + "}"

    def h27_kms_blob(self) -> str:
        return "AQICAHh" + self.h27_util_b64(150)

    def h27_enc_pem(self) -> str:
        return self.h27_util_armor("ENCRYPTED PRIVATE KEY", 48 * 11)

    def h27_dpapi(self) -> str:
        return "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + self.h27_util_b64(self.pick([162, 178]))

    def h27_kc_secretdata(self) -> str:
        value = self.h27_util_b64(64)
        salt = self.h27_util_b64(16)
        return (
            f'{{\\"value\\":\\"{value}\\",\\"salt\\":\\"{salt}\\",\\"additionalParameters\\":{{}}}}'
        )

    # ------------------------------------------------------------------ negatives: references
    def h27_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["DB_PASSWORD"]',
                'os.getenv("DB_PASSWORD", "")',
                'keyring.get_password("avu-sis", "sis_ro")',
                'secrets_client.get_secret("db-password").value',
                'getpass.getpass("Password: ")',
                'env("DB_PASSWORD")',
            ]
        )

    def h27_php_ref(self) -> str:
        return self.pick(
            [
                "getenv('MOODLE_DB_PASSWORD')",
                "$_ENV['MOODLE_DB_PASSWORD']",
                "trim(file_get_contents('/run/secrets/moodle_db_password'))",
                "$secrets['dbpass']",
            ]
        )

    def h27_spring_ref(self) -> str:
        return self.pick(
            [
                "${SIS_DB_PASSWORD}",
                "${vault.sis.db.password}",
                "${SIS_DB_PASSWORD:}",
                "ENC(${SIS_DB_PASSWORD_ENC})",
            ]
        )

    def h27_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("SKY_SUBSCRIPTION_KEY")',
                'configuration["Sky:SubscriptionKey"]',
                "_options.Value.SubscriptionKey",
                '(await secretClient.GetSecretAsync("sky-subscription-key")).Value.Value',
            ]
        )

    def h27_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:LENEL_SVC_PASSWORD",
                "(Get-Secret -Name LenelSvc -AsPlainText)",
                "(Read-Host -AsSecureString 'OnGuard password')",
                "$Credential.GetNetworkCredential().Password",
            ]
        )

    def h27_r_ref(self) -> str:
        return self.pick(
            [
                'Sys.getenv("QUALTRICS_API_KEY")',
                'keyring::key_get("qualtrics")',
                'rstudioapi::askForPassword("Qualtrics token")',
                'config::get("qualtrics")$api_key',
            ]
        )

    def h27_matlab_ref(self) -> str:
        return self.pick(
            ["getenv('LIMS_TOKEN')", "getSecret('limsToken')", "char(readlines('~/.lims_token'))"]
        )

    def h27_ansible_ref(self) -> str:
        return self.pick(
            [
                "{{ slurmdbd_storage_pass }}",
                "{{ vault_slurmdbd_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/hpc/slurmdbd:password') }}",
                "{{ lookup('env', 'SLURMDBD_PASS') }}",
            ]
        )

    def h27_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.HARBOR_ROBOT_SECRET }}",
                "${{ secrets.REGISTRY_PASSWORD }}",
                "${{ vars.REGISTRY_USER }}",
                "$HARBOR_PASSWORD",
            ]
        )

    def h27_tf_ref(self) -> str:
        return self.pick(
            [
                "var.client_secret",
                "azuread_application_password.portal.value",
                "data.azurerm_key_vault_secret.portal.value",
                "random_password.portal.result",
            ]
        )

    def h27_shib_ref(self) -> str:
        return self.pick(
            [
                "%{idp.attribute.resolver.LDAP.bindDNCredential:undefined}",
                "%{idp.authn.LDAP.bindDNCredential}",
                "%{env.LDAP_BIND_PASSWORD}",
            ]
        )

    def h27_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-avu-card.vault.azure.net/secrets/gallagher-api-key/)",
                "@Microsoft.KeyVault(VaultName=kv-avu-card;SecretName=gallagher-api-key)",
                "kv://kv-avu-card/gallagher-api-key",
            ]
        )

    def h27_dbt_ref(self) -> str:
        return self.pick(
            [
                "\"{{ env_var('DBT_SIS_PASSWORD') }}\"",
                "\"{{ env_var('DBT_ENV_SECRET_SIS_PASSWORD') }}\"",
            ]
        )

    def h27_bat_ref(self) -> str:
        return self.pick(["%MYSQL_BACKUP_PW%", "%~1", "!DBPASS!"])

    def h27_npmrc_ref(self) -> str:
        return self.pick(["${NPM_TOKEN}", "${NODE_AUTH_TOKEN}"])

    def h27_secret_path(self) -> str:
        return self.pick(
            [
                "/run/secrets/postgres_password",
                "/etc/avu/secrets/ldap-bind.pw",
                "/etc/ldap.secret",
                "/var/lib/avu/secrets/db.pass",
            ]
        )

    def h27_secret_name(self) -> str:
        return self.pick(
            [
                "portal-db-credentials",
                "moodle-db",
                "sis-api-secrets",
                "harbor-regcred",
                "smtp-relay",
            ]
        )

    def h27_vault_path(self) -> str:
        return self.pick(
            [
                "kv/hpc/slurmdbd",
                "kv/data/sis/oracle/sis_ro",
                "secret/library/alma",
                "kv/card/gallagher",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h27_placeholder_en(self) -> str:
        return self.pick(
            [
                "<your-password>",
                "CHANGE_ME",
                "REPLACE_WITH_REAL_KEY",
                "__DB_PASS__",
                "<redacted>",
                "********",
                "TBD",
                "${DB_PASSWORD}",
                "<insert API key>",
                "see-password-manager",
            ]
        )

    def h27_placeholder_ms(self) -> str:
        return self.pick(
            [
                "<kata-laluan-anda>",
                "[DIREDAKSI]",
                "TUKAR_SAYA",
                "(rujuk Bitwarden)",
                "********",
                "${KATA_LALUAN_DB}",
                "<masukkan-token-di-sini>",
            ]
        )

    def h27_placeholder_pl(self) -> str:
        return self.pick(
            [
                "<twoje-hasło>",
                "[UKRYTE]",
                "ZMIEŃ_MNIE",
                "(w KeePass)",
                "********",
                "<wstaw-token>",
                "${HASLO_DB}",
                "xxxxxxxx",
            ]
        )

    def h27_alma_placeholder(self) -> str:
        return self.pick(
            [
                "l7xx" + "x" * 32,
                "l7xx<your-key>",
                "<ALMA_API_KEY>",
                "l7xx" + "0" * 32,
            ]
        )

    def h27_doc_placeholder(self) -> str:
        return self.pick(
            ["sk-...", "sk-proj-XXXXXXXXXXXXXXXX", "<your-openai-key>", "$OPENAI_API_KEY", "..."]
        )

    def h27_redacted(self) -> str:
        return self.pick(
            ["****", "[REDACTED]", "[FILTERED]", "•••••••••", "<redacted>", "xxxxxxxx", "***"]
        )

    def h27_fake(self) -> str:
        return self.pick(
            [
                "fake-token-" + self.s(8, LOWNUM),
                "not-a-real-secret",
                "dummy_password_" + self.s(3, DIGITS),
                "test-only-do-not-use",
                "FAKE" + "0" * 28,
                "unit-test-secret",
            ]
        )

    def h27_doc_default(self) -> str:
        return self.pick(["testing123"])

    def h27_radsec_default(self) -> str:
        return self.pick(["radsec"])

    def h27_osdp_default(self) -> str:
        return self.pick(["303132333435363738393A3B3C3D3E3F"])

    def h27_aws_example(self) -> str:
        return self.pick(["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"])

    def h27_slack_example(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX",
            ]
        )

    def h27_doc_url_pw(self) -> str:
        return self.pick(self.words) + self.s(2, DIGITS)

    # ------------------------------------------------------------------ negatives: UI text
    def h27_ui_en(self) -> str:
        return self.pick(
            [
                "Password must be at least 12 characters",
                "Passwords do not match",
                "Forgot your password?",
                "Enter your University password",
                "Your password has expired. Please choose a new one.",
                "Invalid or expired access token",
            ]
        )

    def h27_ui_ms(self) -> str:
        return self.pick(
            [
                "Kata laluan mestilah sekurang-kurangnya 12 aksara",
                "Kata laluan tidak sepadan",
                "Lupa kata laluan?",
                "Masukkan kata laluan anda",
                "Kata laluan anda telah tamat tempoh",
                "Token akses tidak sah",
            ]
        )

    def h27_ui_pl(self) -> str:
        return self.pick(
            [
                "Hasło musi mieć co najmniej 12 znaków",
                "Hasła nie są zgodne",
                "Nie pamiętasz hasła?",
                "Wprowadź hasło",
                "Twoje hasło wygasło",
                "Nieprawidłowy token dostępu",
            ]
        )

    def h27_policy(self) -> str:
        return self.pick(["12", "14", "16", "24", "90", "365"])

    # ------------------------------------------------------------------ negatives: public material
    def h27_cert(self) -> str:
        return self.h27_util_armor("CERTIFICATE", 48 * 15)

    def h27_pubkey_pem(self) -> str:
        return self.h27_util_armor("PUBLIC KEY", 294)

    def h27_x509_b64(self) -> str:
        return "MII" + self.h27_util_b64(self.pick([720, 810]))

    def h27_pubkey_b64(self) -> str:
        return "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + self.h27_util_b64(246)

    def h27_jwk_n(self) -> str:
        return self.h27_util_b64(256, urlsafe=True, pad=False)

    def h27_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
        )
        who = self.pick(["jbarker", "nmohdali", "akowalska", "hpc-admin", "svc-backup"])
        return f"ssh-ed25519 {body.decode()} {who}@avu.ac.uk"

    def h27_ssh_fpr(self) -> str:
        return "SHA256:" + self.h27_util_b64(32, pad=False)

    def h27_cert_fpr(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(32))

    def h27_pgp_pub(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 10)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def h27_age_pub(self) -> str:
        return "age1" + self.s(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l")

    def h27_stripe_pk(self) -> str:
        return "pk_live_" + self.s(self.pick([24, 99]), ALNUM)

    def h27_recaptcha_site(self) -> str:
        return "6L" + self.s(38, URLSAFE)

    def h27_b64_cert(self) -> str:
        return base64.b64encode((self.h27_cert() + "\n").encode()).decode()

    # ------------------------------------------------------------------ negatives: identifiers
    def h27_uuid(self) -> str:
        return self.h27_util_uuid()

    def h27_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h27_sha384(self) -> str:
        return hashlib.sha384(self.rng.randbytes(24)).hexdigest()

    def h27_sha1(self) -> str:
        return hashlib.sha1(self.rng.randbytes(24)).hexdigest()

    def h27_git_sha(self) -> str:
        return self.s(40, HEX)

    def h27_sri(self) -> str:
        return "sha512-" + self.h27_util_b64(64)

    def h27_gosum(self) -> str:
        return "h1:" + self.h27_util_b64(32)

    def h27_irmark(self) -> str:
        return self.h27_util_b64(20)

    def h27_student_id(self) -> str:
        return self.pick(["2", "3"]) + self.s(7, DIGITS)

    def h27_card_uid(self) -> str:
        return self.s(self.pick([8, 14]), HEXU)

    def h27_eui64(self) -> str:
        return self.pick(["70B3D57ED", "A84041", "0004A30B0"]) + self.s(16, HEXU)[: 16 - 9]

    def h27_sf_id(self) -> str:
        return self.pick(["003", "001", "006", "a0B"]) + self.s(15, ALNUM)

    def h27_orcid(self) -> str:
        return "-".join(self.s(4, DIGITS) for _ in range(3)) + "-" + self.s(3, DIGITS) + "X"

    def h27_isbn(self) -> str:
        digits = "978" + self.s(9, DIGITS)
        total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits))
        return digits + str((10 - total % 10) % 10)

    def h27_canvas_dev_id(self) -> str:
        return "1000000000" + self.s(5, DIGITS)

    def h27_instr_serial(self) -> str:
        return self.pick(["SN", "OR", "MS", "NMR"]) + self.s(4, DIGITS) + "-" + self.s(6, UPNUM)

    def h27_iban_pl(self) -> str:
        return "PL" + self.s(26, DIGITS)


VALUES = Heldout27Values


def t(path: str, text: str, kind: str, positive: bool) -> evalset.Template:
    """One template: ``text`` is dedented and its first newline dropped."""
    return (path, textwrap.dedent(text).lstrip("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = []

# ---------------------------------------------------------------- student information system
TEMPLATES += [
    t(
        "sis/records-api/src/main/resources/application-prod.properties",
        r"""
        # Student records API -- production profile
        # Owner: Student Systems (studentsystems@avu.ac.uk)
        server.port=8443
        server.ssl.enabled=true
        spring.application.name=records-api

        spring.datasource.url=jdbc:oracle:thin:@//sisdb-scan.avu.ac.uk:1521/SISPRD
        spring.datasource.username=SIS_API
        spring.datasource.password={V}
        spring.datasource.driver-class-name=oracle.jdbc.OracleDriver
        spring.datasource.hikari.maximum-pool-size=20
        spring.datasource.hikari.connection-timeout=30000

        spring.jpa.hibernate.ddl-auto=validate
        spring.jpa.open-in-view=false

        management.endpoints.web.exposure.include=health,info,prometheus
        logging.level.uk.ac.avu.records=INFO
        """,
        "h27_oracle_pw",
        True,
    ),
    t(
        "sis/records-api/src/main/resources/application-uat.properties",
        r"""
        # Student records API -- UAT profile (values injected by the OpenShift deployment)
        server.port=8443
        spring.application.name=records-api

        spring.datasource.url=jdbc:oracle:thin:@//sisdb-uat.avu.ac.uk:1521/SISUAT
        spring.datasource.username=SIS_API
        spring.datasource.password={V}
        spring.datasource.hikari.maximum-pool-size=5

        records.hesa.return-year=2024
        records.ucas.feed.enabled=false
        """,
        "h27_spring_ref",
        False,
    ),
    t(
        "sis/etl/nightly_extract.py",
        r'''
        """Nightly extract of module registrations from SITS into the data warehouse."""

        import csv
        import datetime as dt
        import logging

        import oracledb

        log = logging.getLogger("sis.extract")

        SQL = """
            SELECT spr_code, mod_code, ayr_code, psl_code, smo_rtsc
              FROM cam_smo
             WHERE ayr_code = :ayr
        """


        def connect() -> oracledb.Connection:
            return oracledb.connect(
                user="SIS_RO",
                password="{V}",
                dsn="sisdb-scan.avu.ac.uk:1521/SISPRD",
            )


        def main() -> None:
            ayr = dt.date.today().strftime("%Y/") + str(dt.date.today().year % 100 + 1)
            with connect() as conn, open("/data/landing/smo.csv", "w", newline="") as fh:
                cur = conn.cursor()
                cur.execute(SQL, ayr=ayr)
                writer = csv.writer(fh)
                writer.writerow([d[0] for d in cur.description])
                writer.writerows(cur)
            log.info("extract done for %s", ayr)


        if __name__ == "__main__":
            main()
        ''',
        "h27_oracle_pw",
        True,
    ),
    t(
        "sis/etl/hesa_snapshot.py",
        r'''
        """Take the HESA Data Futures snapshot from SITS (read-only account)."""

        import os

        import oracledb

        DSN = os.environ.get("SIS_DSN", "sisdb-scan.avu.ac.uk:1521/SISPRD")


        def connect() -> oracledb.Connection:
            password = {V}
            return oracledb.connect(user="SIS_RO", password=password, dsn=DSN)


        def snapshot(conn: oracledb.Connection, ref_period: str) -> int:
            cur = conn.cursor()
            cur.callproc("HESA_DF.TAKE_SNAPSHOT", [ref_period])
            cur.execute("SELECT COUNT(*) FROM hesa_df_student WHERE ref_period = :p", p=ref_period)
            return cur.fetchone()[0]
        ''',
        "h27_py_ref",
        False,
    ),
    t(
        "sis/db/migrations/V2024_07_02__portal_users.sql",
        r"""
        -- Applicant portal: seed the support accounts used by Admissions for impersonation.
        -- Hashes are bcrypt (cost 10) as produced by the portal's PasswordEncoder.
        INSERT INTO portal_user (username, display_name, role, password_hash, created_at)
        VALUES ('adm.support1', 'Admissions Support 1', 'SUPPORT', '{V}', SYSDATE);
        INSERT INTO portal_user (username, display_name, role, password_hash, created_at)
        VALUES ('adm.support2', 'Admissions Support 2', 'SUPPORT', '{V2}', SYSDATE);
        INSERT INTO portal_user (username, display_name, role, password_hash, created_at)
        VALUES ('intl.office', 'International Office', 'AGENT_ADMIN', '{V3}', SYSDATE);
        COMMIT;
        """,
        "h27_bcrypt",
        False,
    ),
    t(
        "sis/db/grants/create_reporting_user.sql",
        r"""
        -- Reporting account for Planning & Insight (Power BI gateway).
        -- Ticket: CHG0031877
        CREATE USER SIS_REPORT IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE users
          TEMPORARY TABLESPACE temp
          PROFILE app_service;

        GRANT CREATE SESSION TO SIS_REPORT;
        GRANT SELECT ON sits.ins_stu TO SIS_REPORT;
        GRANT SELECT ON sits.ins_spr TO SIS_REPORT;
        GRANT SELECT ON sits.cam_smo TO SIS_REPORT;
        GRANT SELECT ON sits.srs_crs TO SIS_REPORT;
        """,
        "h27_oracle_pw",
        True,
    ),
    t(
        "sis/db/grants/clone_users_from_prod.sql",
        r"""
        -- Generated by DBMS_METADATA on SISPRD for the UAT refresh; the verifier keeps the
        -- production password without anyone knowing it. Do not edit by hand.
        ALTER USER SIS_API IDENTIFIED BY VALUES '{V}';
        ALTER USER SIS_RO IDENTIFIED BY VALUES '{V2}';
        ALTER USER SIS_REPORT IDENTIFIED BY VALUES '{V3}';
        """,
        "h27_oracle_verifier",
        False,
    ),
    t(
        "sis/scripts/refresh_uat.sh",
        r"""
        #!/usr/bin/env bash
        # Refresh SISUAT from last night's RMAN backup, then re-point the app accounts.
        set -euo pipefail

        export ORACLE_SID=SISUAT
        export ORAENV_ASK=NO
        . oraenv

        rman target / <<'EOF'
        run { duplicate database to SISUAT from active database nofilenamecheck; }
        EOF

        sqlplus -s sis_owner/{V}@SISUAT <<'EOF'
        @/opt/sis/sql/post_refresh_mask_pii.sql
        @/opt/sis/sql/post_refresh_disable_jobs.sql
        exit
        EOF

        echo "UAT refresh finished at $(date -Is)"
        """,
        "h27_oracle_pw",
        True,
    ),
    t(
        "sis/docs/runbooks/clearing-day.md",
        r"""
        # Clearing day runbook (Admissions + Student Systems)

        ## Before 08:00

        1. Check the UCAS ABL feed has loaded: `select max(load_ts) from ucas_abl_log;`
        2. Scale the applicant portal to 6 pods: `oc scale dc/applicant-portal --replicas=6`
        3. The portal's database account password lives in Vault, never in this page:

           ```
           vault kv get -field=password {V}
           ```

        ## If the portal slows down

        - Look at the Grafana board "Applicant portal / clearing".
        - Raise a P2 with the DBA on-call (Teams channel *SIS On-call*).
        """,
        "h27_vault_path",
        False,
    ),
    t(
        "sis/reporting/ReportingService/appsettings.Production.json",
        r"""
        {
          "Logging": {
            "LogLevel": {
              "Default": "Information",
              "Microsoft.AspNetCore": "Warning"
            }
          },
          "ConnectionStrings": {
            "Warehouse": "Server=sql-dw01.avu.ac.uk;Database=AVU_DW;User Id=svc_reporting;Password={V};Encrypt=True;TrustServerCertificate=False"
          },
          "Reporting": {
            "CacheMinutes": 30,
            "ExportFolder": "\\\\fs01.avu.ac.uk\\planning$\\exports"
          }
        }
        """,
        "h27_pw",
        True,
    ),
    t(
        "sis/reporting/ReportingService/appsettings.json",
        r"""
        {
          "Logging": {
            "LogLevel": {
              "Default": "Information"
            }
          },
          "ConnectionStrings": {
            "Warehouse": "Server=sql-dw01.avu.ac.uk;Database=AVU_DW;User Id=svc_reporting;Password={V};Encrypt=True"
          },
          "Reporting": {
            "CacheMinutes": 30
          }
        }
        """,
        "h27_placeholder_en",
        False,
    ),
    t(
        "sis/warehouse/dbt/profiles.yml",
        r"""
        avu_warehouse:
          target: prod
          outputs:
            prod:
              type: oracle
              user: DBT_SIS
              password: {V}
              protocol: tcp
              host: sisdb-scan.avu.ac.uk
              port: 1521
              service: SISPRD
              schema: DW_STAGE
              threads: 4
        """,
        "h27_dbt_ref",
        False,
    ),
    t(
        "sis/db/seed/api_clients.sql",
        r"""
        -- Registered consumers of the records API. Only a SHA-256 of each client secret is
        -- stored; the secret itself is shown once at registration.
        INSERT INTO api_client (client_id, owner, scopes, client_secret_hash) VALUES
          ('timetabling', 'Timetabling Office', 'modules:read', '{V}'),
          ('library-alma', 'Library Systems', 'patrons:read', '{V2}'),
          ('card-office', 'Campus Card', 'students:read photos:read', '{V3}');
        """,
        "h27_sha256",
        False,
    ),
    t(
        "sis/tests/fixtures/enrolments.csv",
        r"""
        student_id,surname,forenames,course_code,mode,year_of_study,status
        {V},Barker,James Edward,UG-CS-BSC,FT,2,ENROLLED
        {V2},Mohd Ali,Nurul Aina,UG-ACC-BSC,FT,1,ENROLLED
        {V3},Kowalska,Agnieszka,PGT-DS-MSC,PT,1,INTERRUPTED
        {V4},Okafor,Chidi,PGR-PHYS-PHD,FT,3,ENROLLED
        """,
        "h27_student_id",
        False,
    ),
]

# ---------------------------------------------------------------- research computing / HPC
TEMPLATES += [
    t(
        "hpc/slurm/etc/slurmdbd.conf",
        r"""
        # slurmdbd.conf for the Ashworth cluster "Heron" (managed by hand on hpc-dbd01 since the
        # Ansible role broke; see HPC-412)
        AuthType=auth/munge
        DbdHost=hpc-dbd01
        DbdPort=6819
        SlurmUser=slurm
        DebugLevel=info
        LogFile=/var/log/slurm/slurmdbd.log
        PidFile=/var/run/slurmdbd/slurmdbd.pid

        StorageType=accounting_storage/mysql
        StorageHost=hpc-mariadb01.hpc.avu.ac.uk
        StoragePort=3306
        StorageUser=slurm
        StoragePass={V}
        StorageLoc=slurm_acct_db

        PurgeEventAfter=12month
        PurgeJobAfter=24month
        PurgeStepAfter=6month
        """,
        "h27_pw",
        True,
    ),
    t(
        "hpc/ansible/roles/slurmdbd/templates/slurmdbd.conf.j2",
        r"""
        # {{ ansible_managed }}
        AuthType=auth/munge
        DbdHost={{ slurmdbd_host }}
        DbdPort=6819
        SlurmUser=slurm
        LogFile=/var/log/slurm/slurmdbd.log

        StorageType=accounting_storage/mysql
        StorageHost={{ slurmdbd_storage_host }}
        StorageUser={{ slurmdbd_storage_user }}
        StoragePass={V}
        StorageLoc=slurm_acct_db
        """,
        "h27_ansible_ref",
        False,
    ),
    t(
        "hpc/ansible/group_vars/slurm/vault.yml",
        r"""
        {V}
        """,
        "h27_ansible_vault",
        False,
    ),
    t(
        "hpc/jupyterhub/jupyterhub_config.py",
        r"""
        # JupyterHub on the Heron login nodes, spawning into Slurm via batchspawner.
        import batchspawner  # noqa: F401

        c = get_config()  # noqa: F821

        c.JupyterHub.bind_url = "https://jupyter.hpc.avu.ac.uk"
        c.JupyterHub.hub_ip = "0.0.0.0"
        c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
        c.LDAPAuthenticator.server_address = "ldaps://ldap.avu.ac.uk"
        c.LDAPAuthenticator.bind_dn_template = ["uid={username},ou=people,dc=avu,dc=ac,dc=uk"]

        c.JupyterHub.cookie_secret = bytes.fromhex("{V}")
        c.ConfigurableHTTPProxy.auth_token = "{V2}"

        c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
        c.SlurmSpawner.req_partition = "interactive"
        c.SlurmSpawner.req_runtime = "8:00:00"
        c.SlurmSpawner.req_memory = "16G"
        """,
        "h27_hex64",
        True,
    ),
    t(
        "hpc/jupyterhub/jupyterhub_config.d/10-secrets.py",
        r"""
        # Secrets come from the environment written by systemd's LoadCredential=.
        import os

        c = get_config()  # noqa: F821

        c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"
        c.ConfigurableHTTPProxy.auth_token = {V}
        c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
        """,
        "h27_py_ref",
        False,
    ),
    t(
        "hpc/ondemand/ood_portal.yml",
        r"""
        ---
        # Open OnDemand portal for Heron; regenerate with
        #   /opt/ood/ood-portal-generator/sbin/update_ood_portal
        servername: ondemand.hpc.avu.ac.uk
        port: 443
        ssl:
          - 'SSLCertificateFile "/etc/pki/tls/certs/ondemand.hpc.avu.ac.uk.crt"'
          - 'SSLCertificateKeyFile "/etc/pki/tls/private/ondemand.hpc.avu.ac.uk.key"'

        auth:
          - 'AuthType openid-connect'
          - 'Require valid-user'

        oidc_uri: /oidc
        oidc_provider_metadata_url: https://login.avu.ac.uk/realms/avu/.well-known/openid-configuration
        oidc_client_id: ondemand-heron
        oidc_client_secret: "{V}"
        oidc_remote_user_claim: preferred_username
        oidc_scope: "openid profile email"
        """,
        "h27_alnum32",
        True,
    ),
    t(
        "hpc/globus/register_collection.py",
        r'''
        """Register the research data store as a Globus guest collection (run once per project)."""

        import os
        import sys

        import globus_sdk

        CLIENT_ID = os.environ["GLOBUS_CLIENT_ID"]
        CLIENT_SECRET = "{V}"
        MAPPED_COLLECTION = os.environ["GLOBUS_MAPPED_COLLECTION"]


        def main(project: str) -> None:
            app = globus_sdk.ConfidentialAppAuthClient(CLIENT_ID, CLIENT_SECRET)
            authorizer = globus_sdk.ClientCredentialsAuthorizer(
                app, globus_sdk.TransferClient.scopes.all
            )
            tc = globus_sdk.TransferClient(authorizer=authorizer)
            print(tc.get_endpoint(MAPPED_COLLECTION)["display_name"], "->", project)


        if __name__ == "__main__":
            main(sys.argv[1])
        ''',
        "h27_globus_secret",
        True,
    ),
    t(
        "hpc/globus/collections.yaml",
        r"""
        # Globus collections run by Research Computing. These are public identifiers; the
        # Globus web app shows them to anyone who searches for "Ashworth Vale".
        collections:
          - name: AVU Heron scratch
            endpoint_id: {V}
            collection_id: {V2}
            path: /scratch
          - name: AVU Research Data Store (mapped)
            endpoint_id: {V}
            collection_id: {V3}
            path: /rds/projects
        """,
        "h27_uuid",
        False,
    ),
    t(
        "hpc/docs/examples/wandb-netrc.txt",
        r"""
        # ~/.netrc on Heron for the Vision Lab shared account (copied from jsmith's home by
        # mistake, 2024-02-11 -- rotate!)
        machine api.wandb.ai
          login user
          password {V}
        """,
        "h27_wandb",
        True,
    ),
    t(
        "hpc/notebooks/llm-finetune-demo.ipynb",
        r"""
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": [
            "# Fine-tuning a small model on Heron\n",
            "Run this on an `a100` partition node from Open OnDemand."
           ]
          },
          {
           "cell_type": "code",
           "execution_count": 2,
           "metadata": {},
           "outputs": [],
           "source": [
            "from huggingface_hub import login\n",
            "login(token=\"{V}\")\n",
            "import os\n",
            "os.environ[\"HF_HOME\"] = \"/scratch/visionlab/hf-cache\""
           ]
          }
         ],
         "metadata": {
          "kernelspec": {"display_name": "Python 3 (torch 2.3)", "language": "python", "name": "torch23"}
         },
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h27_hf",
        True,
    ),
    t(
        "hpc/notebooks/checkpoint-verify.ipynb",
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 4,
           "metadata": {},
           "outputs": [
            {
             "name": "stdout",
             "output_type": "stream",
             "text": [
              "model-00001-of-00002.safetensors  sha256={V}\n",
              "model-00002-of-00002.safetensors  sha256={V2}\n",
              "tokenizer.json                     sha256={V3}\n"
             ]
            }
           ],
           "source": [
            "for f in sorted(ckpt.glob('*')):\n",
            "    print(f\"{f.name:34} sha256={sha256sum(f)}\")"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h27_sha256",
        False,
    ),
    t(
        "hpc/ldap/people-import.ldif",
        r"""
        # Local (non-AD) accounts for external collaborators on Heron.
        dn: uid=ext-wnowak,ou=people,dc=hpc,dc=avu,dc=ac,dc=uk
        objectClass: inetOrgPerson
        objectClass: posixAccount
        uid: ext-wnowak
        cn: Wojciech Nowak
        sn: Nowak
        uidNumber: 70112
        gidNumber: 70000
        homeDirectory: /home/ext-wnowak
        loginShell: /bin/bash
        userPassword: {V}

        dn: uid=ext-slim,ou=people,dc=hpc,dc=avu,dc=ac,dc=uk
        objectClass: inetOrgPerson
        objectClass: posixAccount
        uid: ext-slim
        cn: Siew Ling Lim
        sn: Lim
        uidNumber: 70113
        gidNumber: 70000
        homeDirectory: /home/ext-slim
        loginShell: /bin/bash
        userPassword: {V2}
        """,
        "h27_ssha",
        False,
    ),
    t(
        "hpc/ldap/sssd.conf",
        r"""
        [sssd]
        services = nss, pam
        domains = hpc.avu.ac.uk

        [domain/hpc.avu.ac.uk]
        id_provider = ldap
        auth_provider = ldap
        ldap_uri = ldaps://ldap1.hpc.avu.ac.uk, ldaps://ldap2.hpc.avu.ac.uk
        ldap_search_base = dc=hpc,dc=avu,dc=ac,dc=uk
        ldap_default_bind_dn = cn=sssd-reader,ou=services,dc=hpc,dc=avu,dc=ac,dc=uk
        ldap_default_authtok_type = password
        ldap_default_authtok = {V}
        ldap_tls_reqcert = demand
        cache_credentials = true
        enumerate = false
        """,
        "h27_ldap_pw",
        True,
    ),
    t(
        "hpc/conda/envs/genomics/conda-lock.yml",
        r"""
        version: 1
        metadata:
          platforms:
          - linux-64
          sources:
          - environment.yml
        package:
        - name: samtools
          version: '1.19'
          manager: conda
          platform: linux-64
          url: https://conda.anaconda.org/bioconda/linux-64/samtools-1.19-h50ea8bc_0.tar.bz2
          hash:
            sha256: {V}
        - name: bwa
          version: 0.7.17
          manager: conda
          platform: linux-64
          url: https://conda.anaconda.org/bioconda/linux-64/bwa-0.7.17-he4a0461_11.tar.bz2
          hash:
            sha256: {V2}
        """,
        "h27_sha256",
        False,
    ),
    t(
        "hpc/irods/ingest_instrument_runs.py",
        r"""
        import pathlib

        from irods.session import iRODSSession

        ZONE = "avuZone"


        def upload(run_dir: pathlib.Path) -> None:
            with iRODSSession(
                host="irods.rds.avu.ac.uk",
                port=1247,
                user="svc_ingest",
                password="{V}",
                zone=ZONE,
            ) as session:
                coll = f"/{ZONE}/home/svc_ingest/runs/{run_dir.name}"
                session.collections.create(coll)
                for f in run_dir.glob("*.raw"):
                    session.data_objects.put(str(f), f"{coll}/{f.name}")
        """,
        "h27_pw",
        True,
    ),
]

# ---------------------------------------------------------------- library systems
TEMPLATES += [
    t(
        "library/alma-integrations/alma_sync/settings.py",
        r"""
        # Settings for the Alma <-> SITS patron loader.
        ALMA_REGION = "eu"
        ALMA_BASE_URL = f"https://api-{ALMA_REGION}.hosted.exlibrisgroup.com/almaws/v1"
        ALMA_API_KEY = "{V}"

        PATRON_GROUPS = {
            "UG": "UNDERGRAD",
            "PGT": "POSTGRAD",
            "PGR": "RESEARCH",
            "STAFF": "STAFF",
        }
        EXPIRY_GRACE_DAYS = 60
        """,
        "h27_alma_key",
        True,
    ),
    t(
        "library/alma-integrations/README.md",
        r"""
        # alma-integrations

        Loads patrons from SITS into Alma every night and pushes fines back to the finance system.

        ## Running locally

        ```bash
        python -m venv .venv && . .venv/bin/activate
        pip install -e .
        export ALMA_API_KEY={V}
        python -m alma_sync --dry-run
        ```

        Ask Library Systems for a *sandbox* key from the Ex Libris Developer Network; production
        keys are never handed out.
        """,
        "h27_alma_placeholder",
        False,
    ),
    t(
        "library/ezproxy/user.txt",
        r"""
        # EZproxy user.txt -- local accounts only; everyone else comes in via Shibboleth
        # (see shibuser.txt). Keep the admin account local for when the IdP is down.
        ::Shibboleth
        IncludeFile shibuser.txt
        /Shibboleth

        libadmin:{V}:admin
        walkin:{V2}
        """,
        "h27_pw",
        True,
    ),
    t(
        "library/ezproxy/config.txt",
        r"""
        LoginPort 80
        LoginPortSSL 443
        Name ezproxy.avu.ac.uk
        Option ForceHTTPSLogin
        MaxLifetime 120
        MaxSessions 5000

        ::LDAP
        URL ldaps://ldap.avu.ac.uk/ou=people,dc=avu,dc=ac,dc=uk?uid?sub?(objectClass=person)
        BindUser cn=svc-ezproxy,ou=services,dc=avu,dc=ac,dc=uk
        BindPassword {V}
        IfUnauthenticated; Stop
        /LDAP

        IncludeFile databases.txt
        """,
        "h27_ldap_pw",
        True,
    ),
    t(
        "library/ezproxy/shibboleth/idp-avu.xml",
        r"""
        <EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"
                          xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
                          entityID="https://idp.avu.ac.uk/idp/shibboleth">
          <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
            <KeyDescriptor use="signing">
              <ds:KeyInfo>
                <ds:X509Data>
                  <ds:X509Certificate>{V}</ds:X509Certificate>
                </ds:X509Data>
              </ds:KeyInfo>
            </KeyDescriptor>
            <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
                                 Location="https://idp.avu.ac.uk/idp/profile/SAML2/Redirect/SSO"/>
          </IDPSSODescriptor>
        </EntityDescriptor>
        """,
        "h27_x509_b64",
        False,
    ),
    t(
        "library/koha/etc/koha-sites/avu-archive/koha-conf.xml",
        r"""
        <yazgfs>
        <listen id="biblioserver">unix:/var/run/koha/avu-archive/bibliosocket</listen>
        <config>
         <db_scheme>mysql</db_scheme>
         <database>koha_avu_archive</database>
         <hostname>localhost</hostname>
         <port>3306</port>
         <user>koha_avu_archive</user>
         <pass>{V}</pass>
         <tls>no</tls>
         <biblioserver>biblios</biblioserver>
         <biblioservershadow>1</biblioservershadow>
         <authorityserver>authorities</authorityserver>
         <intranetdir>/usr/share/koha/intranet/cgi-bin</intranetdir>
         <opacdir>/usr/share/koha/opac/cgi-bin/opac</opacdir>
         <use_zebra_facets>1</use_zebra_facets>
        </config>
        </yazgfs>
        """,
        "h27_pw",
        True,
    ),
    t(
        "library/koha/templates/koha-conf-site.xml.in",
        r"""
        <yazgfs>
        <config>
         <db_scheme>mysql</db_scheme>
         <database>__DB_NAME__</database>
         <hostname>__DB_HOST__</hostname>
         <port>3306</port>
         <user>__DB_USER__</user>
         <pass>{V}</pass>
         <tls>__DB_USE_TLS__</tls>
         <intranetdir>/usr/share/koha/intranet/cgi-bin</intranetdir>
        </config>
        </yazgfs>
        """,
        "h27_placeholder_en",
        False,
    ),
    t(
        "library/selfcheck/kiosk-03/sip2.ini",
        r"""
        ; Bibliotheca selfCheck kiosk 3 (Level 1, Main Library)
        [sip2]
        host = sip2.alma.exlibrisgroup.com
        port = 6443
        use_ssl = 1
        institution = 44AVU_INST
        login_user = sip_kiosk03
        login_password = {V}
        location_code = MAIN-L1

        [printer]
        receipt = 1
        """,
        "h27_weak_pw",
        True,
    ),
    t(
        "library/selfcheck/logs/sip2-2024-10-14.log",
        r"""
        2024-10-14 08:59:58 INFO  kiosk-03 connecting to sip2.alma.exlibrisgroup.com:6443
        2024-10-14 08:59:58 DEBUG kiosk-03 >> 9300CNsip_kiosk03|CO{V}|CPMAIN-L1|AY0AZF5A1
        2024-10-14 08:59:59 DEBUG kiosk-03 << 941AY0AZFDFC
        2024-10-14 09:00:01 DEBUG kiosk-03 >> 9900302.00AY1AZFCA5
        2024-10-14 09:00:01 DEBUG kiosk-03 << 98YYYNYN01000320241014    0900012.00AOAVU|BXYYYYYYYYYYYNNYYY|AY1AZD4B1
        """,
        "h27_redacted",
        False,
    ),
    t(
        "library/isbn-tools/tests/test_isbn.py",
        r"""
        import pytest

        from isbn_tools import normalise

        CASES = [
            {"key": "{V}", "format": "print", "title": "Introduction to Algorithms"},
            {"key": "{V2}", "format": "ebook", "title": "Sejarah Tanah Melayu"},
            {"key": "{V3}", "format": "print", "title": "Pan Tadeusz"},
        ]


        @pytest.mark.parametrize("case", CASES)
        def test_round_trip(case):
            assert normalise(case["key"]) == case["key"]
        """,
        "h27_isbn",
        False,
    ),
    t(
        "library/primo/custom/44AVU_INST-AVU/js/custom.js",
        r"""
        (function () {
          "use strict";
          var app = angular.module('viewCustom', ['angularLoad']);

          // Feedback form on the "Report a problem" link.
          app.constant('avuFeedbackConfig', {
            endpoint: 'https://library.avu.ac.uk/feedback',
            recaptchaSiteKey: '{V}',
            categories: ['Broken link', 'Missing item', 'Other']
          });

          app.component('prmExploreFooterAfter', {
            template: '<avu-footer></avu-footer>'
          });
        })();
        """,
        "h27_recaptcha_site",
        False,
    ),
    t(
        "library/libcal/sync_bookings.php",
        r"""
        <?php
        // Pull study-room bookings from LibCal into the building access system every 5 min.
        declare(strict_types=1);

        $libcal = [
            'base_url'      => 'https://avu.libcal.com/1.1',
            'client_id'     => '612',
            'client_secret' => '{V}',
            'grant_type'    => 'client_credentials',
        ];

        function libcal_token(array $cfg): string
        {
            $ch = curl_init($cfg['base_url'] . '/oauth/token');
            curl_setopt_array($ch, [
                CURLOPT_POST => true,
                CURLOPT_POSTFIELDS => http_build_query([
                    'client_id' => $cfg['client_id'],
                    'client_secret' => $cfg['client_secret'],
                    'grant_type' => $cfg['grant_type'],
                ]),
                CURLOPT_RETURNTRANSFER => true,
            ]);
            $body = json_decode((string) curl_exec($ch), true);
            return $body['access_token'];
        }
        """,
        "h27_alnum32",
        True,
    ),
]

# ---------------------------------------------------------------- campus card and access control
TEMPLATES += [
    t(
        "campus-card/gallagher/cc_export.py",
        r"""
        # Export cardholders from Gallagher Command Centre for the nightly reconciliation with SITS.
        import csv
        import sys

        import requests

        BASE = "https://cc-api.estates.avu.ac.uk:8904/api"
        HEADERS = {
            "Authorization": "GGL-API-KEY {V}",
            "Accept": "application/json",
        }


        def cardholders():
            url = f"{BASE}/cardholders?top=1000&fields=id,firstName,lastName,division,cards"
            while url:
                resp = requests.get(url, headers=HEADERS, verify="/etc/pki/avu-estates-ca.pem", timeout=30)
                resp.raise_for_status()
                body = resp.json()
                yield from body["results"]
                url = body.get("next", {}).get("href")


        writer = csv.writer(sys.stdout)
        for ch in cardholders():
            writer.writerow([ch["id"], ch["firstName"], ch["lastName"], ch["division"]["name"]])
        """,
        "h27_gallagher_key",
        True,
    ),
    t(
        "campus-card/gallagher/README.md",
        r"""
        # Gallagher Command Centre integration

        The export runs as an Azure Function (`func-avu-card-export`). Its app settings are:

        | Setting | Value |
        |---|---|
        | `CC_BASE_URL` | `https://cc-api.estates.avu.ac.uk:8904/api` |
        | `CC_API_KEY` | `{V}` |
        | `CC_CA_BUNDLE` | `avu-estates-ca.pem` |

        The REST client certificate thumbprint must be registered in Command Centre under
        *Configuration > Services and Workstations > REST API*.
        """,
        "h27_kv_ref",
        False,
    ),
    t(
        "campus-card/fixtures/cardholders-sample.csv",
        r"""
        person_id,card_number,facility_code,card_uid,issue_level,status
        540231,100231,42,{V},2,ACTIVE
        540232,100232,42,{V2},1,ACTIVE
        540233,100233,42,{V3},1,LOST
        540234,100234,42,{V4},3,ACTIVE
        """,
        "h27_card_uid",
        False,
    ),
    t(
        "campus-card/lenel/Sync-OnGuardBadges.ps1",
        r"""
        <#
          Sync badge status from the card office database into Lenel OnGuard (legacy sites:
          Sports Centre and Halls). Runs on card-app02 as a scheduled task.
        #>
        param(
            [string]$OnGuardServer = "onguard01.estates.avu.ac.uk",
            [int]$BatchSize = 200
        )

        $user = "AVU\svc_lenel"
        $secure = ConvertTo-SecureString "{V}" -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential($user, $secure)

        $session = New-CimSession -ComputerName $OnGuardServer -Credential $cred
        $badges = Get-CimInstance -CimSession $session -Namespace root/OnGuard -ClassName Lnl_Badge |
            Where-Object { $_.STATUS -ne 1 }
        Write-Host "Inactive badges: $($badges.Count)"
        """,
        "h27_pw",
        True,
    ),
    t(
        "campus-card/lenel/Sync-OnGuardBadges.Tests.ps1",
        r"""
        Describe "Sync-OnGuardBadges" {
            BeforeAll {
                $user = "AVU\svc_lenel"
                $plain = {V}
                $secure = ConvertTo-SecureString $plain -AsPlainText -Force
                $script:cred = New-Object System.Management.Automation.PSCredential($user, $secure)
            }

            It "builds a credential for the service account" {
                $script:cred.UserName | Should -Be "AVU\svc_lenel"
            }
        }
        """,
        "h27_ps_ref",
        False,
    ),
    t(
        "campus-card/door-controllers/site-library.json",
        r"""
        {
          "site": "Main Library",
          "controller": "mercury-lp4502-lib01",
          "bus": "RS-485 port 2",
          "readers": [
            {"address": 1, "door": "LIB-G-01 Main entrance", "osdp": {"secure_channel": true, "scbk": "{V}"}},
            {"address": 2, "door": "LIB-G-02 Staff entrance", "osdp": {"secure_channel": true, "scbk": "{V2}"}},
            {"address": 3, "door": "LIB-3-14 Special Collections", "osdp": {"secure_channel": true, "scbk": "{V3}"}}
          ]
        }
        """,
        "h27_hex32",
        True,
    ),
    t(
        "campus-card/door-controllers/commissioning.md",
        r"""
        # Commissioning a new OSDP reader

        1. Wire the reader to the LP4502 RS-485 port and set its address with the config card.
        2. The reader ships in install mode: the panel talks to it with the default key SCBK-D
           from the OSDP specification, `{V}`, which every reader in the world knows.
        3. In the panel web UI press *Keyset*; the panel generates a unique SCBK for the reader
           and stores it. Nobody ever needs to see it.
        4. Confirm the reader shows *Secure* in Access Manager before handing over.
        """,
        "h27_osdp_default",
        False,
    ),
]

# ---------------------------------------------------------------- learning management systems
TEMPLATES += [
    t(
        "lms/moodle/config.php",
        r"""
        <?php  // Moodle configuration file (learn.avu.ac.uk)

        unset($CFG);
        global $CFG;
        $CFG = new stdClass();

        $CFG->dbtype    = 'pgsql';
        $CFG->dblibrary = 'native';
        $CFG->dbhost    = 'pg-moodle.avu.ac.uk';
        $CFG->dbname    = 'moodle';
        $CFG->dbuser    = 'moodle';
        $CFG->dbpass    = '{V}';
        $CFG->prefix    = 'mdl_';
        $CFG->dboptions = array(
          'dbpersist' => 0,
          'dbport' => 5432,
          'dbsocket' => '',
        );

        $CFG->wwwroot   = 'https://learn.avu.ac.uk';
        $CFG->dataroot  = '/var/moodledata';
        $CFG->admin     = 'admin';
        $CFG->directorypermissions = 02777;

        require_once(__DIR__ . '/lib/setup.php');
        """,
        "h27_pw",
        True,
    ),
    t(
        "lms/moodle/docker/config.php",
        r"""
        <?php  // Moodle config for the container image; all secrets arrive as env or files.

        unset($CFG);
        global $CFG;
        $CFG = new stdClass();

        $CFG->dbtype    = 'pgsql';
        $CFG->dblibrary = 'native';
        $CFG->dbhost    = getenv('MOODLE_DB_HOST');
        $CFG->dbname    = getenv('MOODLE_DB_NAME') ?: 'moodle';
        $CFG->dbuser    = getenv('MOODLE_DB_USER') ?: 'moodle';
        $CFG->dbpass    = {V};
        $CFG->prefix    = 'mdl_';

        $CFG->wwwroot   = getenv('MOODLE_WWWROOT');
        $CFG->dataroot  = '/var/moodledata';

        require_once(__DIR__ . '/lib/setup.php');
        """,
        "h27_php_ref",
        False,
    ),
    t(
        "lms/integrations/moodle_ws/client.py",
        r"""
        # Thin client for Moodle web services (used by the SITS -> Moodle enrolment sync).
        import requests

        MOODLE_URL = "https://learn.avu.ac.uk/webservice/rest/server.php"
        WS_TOKEN = "{V}"


        def call(function: str, **params):
            params.update(wstoken=WS_TOKEN, wsfunction=function, moodlewsrestformat="json")
            resp = requests.post(MOODLE_URL, data=params, timeout=60)
            resp.raise_for_status()
            body = resp.json()
            if isinstance(body, dict) and "exception" in body:
                raise RuntimeError(body["message"])
            return body


        def enrol(userid: int, courseid: int, roleid: int = 5) -> None:
            call(
                "enrol_manual_enrol_users",
                **{"enrolments[0][userid]": userid, "enrolments[0][courseid]": courseid,
                   "enrolments[0][roleid]": roleid},
            )
        """,
        "h27_moodle_token",
        True,
    ),
    t(
        "lms/moodle/docs/ws-troubleshooting.md",
        r"""
        # Web service troubleshooting

        When the enrolment sync fails, the proxy log shows the request like this (the token is
        masked by the log filter, as it should be):

        ```
        POST /webservice/rest/server.php?wstoken={V}&wsfunction=enrol_manual_enrol_users 200
        ```

        If the response is `invalidtoken`, the token was regenerated in *Site administration >
        Server > Web services > Manage tokens*; update the sync's secret in Vault.
        """,
        "h27_redacted",
        False,
    ),
    t(
        "lms/moodle/db/fixtures/mdl_user_test.sql",
        r"""
        -- Behat/PHPUnit users for the AVU theme tests. Passwords are hashed as Moodle stores
        -- them; the plain values are in the test plan, not here.
        INSERT INTO mdl_user (auth, confirmed, mnethostid, username, password, firstname, lastname, email)
        VALUES ('manual', 1, 1, 'teacher1', '{V}', 'Terry', 'Teacher', 'teacher1@example.invalid');
        INSERT INTO mdl_user (auth, confirmed, mnethostid, username, password, firstname, lastname, email)
        VALUES ('manual', 1, 1, 'student1', '{V2}', 'Sam', 'Student', 'student1@example.invalid');
        """,
        "h27_bcrypt",
        False,
    ),
    t(
        "lms/canvas-my/sync/lib/canvas_client.rb",
        r"""
        # Canvas client for AVU Malaysia (avu-my.instructure.com): pushes SIS sections nightly.
        require "net/http"
        require "json"

        module AvuMy
          class CanvasClient
            BASE = URI("https://avu-my.instructure.com/api/v1/")
            TOKEN = "{V}"

            def get(path, params = {})
              uri = BASE + path
              uri.query = URI.encode_www_form(params) unless params.empty?
              req = Net::HTTP::Get.new(uri)
              req["Authorization"] = "Bearer #{TOKEN}"
              res = Net::HTTP.start(uri.host, uri.port, use_ssl: true) { |http| http.request(req) }
              raise "Canvas #{res.code}" unless res.is_a?(Net::HTTPSuccess)
              JSON.parse(res.body)
            end
          end
        end
        """,
        "h27_canvas_token",
        True,
    ),
    t(
        "lms/canvas-my/sync/spec/canvas_client_spec.rb",
        r"""
        require "webmock/rspec"
        require_relative "../lib/canvas_client"

        RSpec.describe AvuMy::CanvasClient do
          let(:token) { "{V}" }

          before do
            stub_const("AvuMy::CanvasClient::TOKEN", token)
            stub_request(:get, "https://avu-my.instructure.com/api/v1/accounts/1/courses")
              .with(headers: { "Authorization" => "Bearer #{token}" })
              .to_return(status: 200, body: "[]")
          end

          it "sends the bearer token" do
            expect(described_class.new.get("accounts/1/courses")).to eq([])
          end
        end
        """,
        "h27_fake",
        False,
    ),
    t(
        "lms/lti/attendance-tool/keys/private.key",
        r"""
        {V}
        """,
        "h27_pkcs8",
        True,
    ),
    t(
        "lms/lti/attendance-tool/keys/jwks.json",
        r"""
        {
          "keys": [
            {
              "kty": "RSA",
              "alg": "RS256",
              "use": "sig",
              "kid": "avu-attendance-2024",
              "e": "AQAB",
              "n": "{V}"
            },
            {
              "kty": "RSA",
              "alg": "RS256",
              "use": "sig",
              "kid": "avu-attendance-2023",
              "e": "AQAB",
              "n": "{V2}"
            }
          ]
        }
        """,
        "h27_jwk_n",
        False,
    ),
    t(
        "lms/lti/attendance-tool/config/platforms.yaml",
        r"""
        # LTI 1.3 platforms that have installed the attendance tool.
        platforms:
          - name: Moodle (England)
            issuer: https://learn.avu.ac.uk
            client_id: kq3WvD1pXtYbH0e
            deployment_id: "3"
            auth_login_url: https://learn.avu.ac.uk/mod/lti/auth.php
            key_set_url: https://learn.avu.ac.uk/mod/lti/certs.php
          - name: Canvas (Malaysia)
            issuer: https://canvas.instructure.com
            client_id: "{V}"
            deployment_id: "118:{V2}"
            auth_login_url: https://sso.canvaslms.com/api/lti/authorize_redirect
            key_set_url: https://sso.canvaslms.com/api/lti/security/jwks
        """,
        "h27_canvas_dev_id",
        False,
    ),
    t(
        "lms/kaltura/etc/kaltura.ini",
        r"""
        ; Kaltura MediaSpace integration for lecture capture (Moodle plugin and the
        ; Panopto migration scripts).
        [kaltura]
        service_url = https://www.kaltura.com
        partner_id = 2519871
        admin_secret = {V}
        user_secret_disabled = 1
        session_expiry = 86400
        category_root = AVU>site>channels
        """,
        "h27_hex32",
        True,
    ),
    t(
        "lms/zoom/src/zoomClient.ts",
        r"""
        // Server-to-server OAuth app "AVU Lecture Sync": creates Zoom meetings for timetabled
        // online sessions.
        import axios from "axios";

        const accountId = "Xq7bA1yTRz2n0dPE4k9mVw";
        const clientId = "fL3xN8ruS4mPq0Zt6vHbQ";
        const clientSecret = "{V}";

        export async function zoomToken(): Promise<string> {
          const basic = Buffer.from(`${clientId}:${clientSecret}`).toString("base64");
          const res = await axios.post(
            `https://zoom.us/oauth/token?grant_type=account_credentials&account_id=${accountId}`,
            null,
            { headers: { Authorization: `Basic ${basic}` } },
          );
          return res.data.access_token;
        }
        """,
        "h27_alnum32",
        True,
    ),
    t(
        "lms/moodle/local/avu/lang/en/local_avu.php",
        r"""
        <?php
        defined('MOODLE_INTERNAL') || die();

        $string['pluginname'] = 'AVU customisations';
        $string['password'] = 'Password';
        $string['passwordhelp'] = '{V}';
        $string['changepassword'] = 'Change your password in the IT Self Service portal';
        $string['token'] = 'Access token';
        """,
        "h27_ui_en",
        False,
    ),
    t(
        "lms/moodle/local/avu/lang/ms/local_avu.php",
        r"""
        <?php
        defined('MOODLE_INTERNAL') || die();

        $string['pluginname'] = 'Penyesuaian AVU';
        $string['password'] = 'Kata laluan';
        $string['passwordhelp'] = '{V}';
        $string['changepassword'] = 'Tukar kata laluan anda di portal Layan Diri IT';
        $string['token'] = 'Token akses';
        """,
        "h27_ui_ms",
        False,
    ),
    t(
        "lms/moodle/local/avu/lang/pl/local_avu.php",
        r"""
        <?php
        defined('MOODLE_INTERNAL') || die();

        $string['pluginname'] = 'Dostosowania AVU';
        $string['password'] = 'Hasło';
        $string['passwordhelp'] = '{V}';
        $string['changepassword'] = 'Zmień hasło w portalu samoobsługowym IT';
        $string['token'] = 'Token dostępu';
        """,
        "h27_ui_pl",
        False,
    ),
]

# ---------------------------------------------------------------- alumni and fundraising CRM
TEMPLATES += [
    t(
        "advancement/raisers-edge/SkyClient/SkyApiClient.cs",
        r"""
        using System.Net.Http.Headers;
        using System.Text.Json;

        namespace Avu.Advancement.Sky;

        /// <summary>Calls the Blackbaud SKY API (Raiser's Edge NXT) for the gift-aid export.</summary>
        public sealed class SkyApiClient
        {
            private const string SubscriptionKey = "{V}";
            private readonly HttpClient _http;

            public SkyApiClient(HttpClient http, string accessToken)
            {
                _http = http;
                _http.BaseAddress = new Uri("https://api.sky.blackbaud.com/");
                _http.DefaultRequestHeaders.Add("Bb-Api-Subscription-Key", SubscriptionKey);
                _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
            }

            public async Task<JsonDocument> GetGiftsAsync(DateTime since)
            {
                var res = await _http.GetAsync($"gift/v1/gifts?last_modified={since:O}&limit=500");
                res.EnsureSuccessStatusCode();
                return await JsonDocument.ParseAsync(await res.Content.ReadAsStreamAsync());
            }
        }
        """,
        "h27_hex32",
        True,
    ),
    t(
        "advancement/raisers-edge/SkyClient/Program.cs",
        r"""
        using Avu.Advancement.Sky;
        using Microsoft.Extensions.Configuration;

        var configuration = new ConfigurationBuilder()
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .Build();

        var subscriptionKey = {V};
        if (string.IsNullOrEmpty(subscriptionKey))
        {
            Console.Error.WriteLine("SKY subscription key is not configured");
            return 1;
        }

        using var http = new HttpClient();
        Console.WriteLine($"SKY client ready (key length {subscriptionKey.Length})");
        return 0;
        """,
        "h27_cs_ref",
        False,
    ),
    t(
        "advancement/salesforce/ant/build.properties",
        r"""
        # Ant Migration Tool properties for the Alumni Relations org (EDA).
        # Password = password + security token, as Salesforce requires for API logins.
        sf.username = integration.user@avu-alumni.my.salesforce.com
        sf.password = {V}
        sf.serverurl = https://login.salesforce.com
        sf.maxPoll = 200
        sf.pollWaitMillis = 10000
        """,
        "h27_sf_pw_token",
        True,
    ),
    t(
        "advancement/salesforce/data/contacts-sample.csv",
        r"""
        Id,AccountId,FirstName,LastName,hed__Alumni_Status__c,Graduation_Year__c
        {V},{V2},Eleanor,Shaw,Active,2009
        {V3},{V4},Tan,Wei Ming,Lapsed,2016
        {V5},{V6},Marta,Zielińska,Active,2021
        """,
        "h27_sf_id",
        False,
    ),
    t(
        "advancement/salesforce/connected-app/.env.prod",
        r"""
        # Connected app "AVU Giving Sync" (JWT flow is planned; password flow for now)
        SF_LOGIN_URL=https://login.salesforce.com
        SF_CLIENT_ID=3MVG9I9urWjeUW05Lp1YkAq2Z8cHvJ0NdT5wqXb7yEyP4mRr1sLf6gOuKx
        SF_CLIENT_SECRET={V}
        SF_USERNAME=integration.user@avu-alumni.my.salesforce.com
        """,
        "h27_sf_secret",
        True,
    ),
    t(
        "advancement/donations/src/webhooks/stripe.js",
        r"""
        const express = require("express");
        const Stripe = require("stripe");

        const stripe = Stripe(process.env.STRIPE_SECRET_KEY);
        const endpointSecret = "{V}";
        const router = express.Router();

        router.post("/stripe", express.raw({ type: "application/json" }), (req, res) => {
          let event;
          try {
            event = stripe.webhooks.constructEvent(req.body, req.headers["stripe-signature"], endpointSecret);
          } catch (err) {
            return res.status(400).send(`Webhook Error: ${err.message}`);
          }
          if (event.type === "checkout.session.completed") {
            require("../giftaid").recordDonation(event.data.object);
          }
          res.json({ received: true });
        });

        module.exports = router;
        """,
        "h27_stripe_whsec",
        True,
    ),
    t(
        "advancement/donations/public/give.html",
        r"""
        <!doctype html>
        <html lang="en-GB">
        <head>
          <meta charset="utf-8">
          <title>Give to Ashworth Vale</title>
          <script src="https://js.stripe.com/v3/"></script>
        </head>
        <body>
          <form id="give-form" data-stripe-key="{V}">
            <label for="amount">Amount (&pound;)</label>
            <input id="amount" name="amount" type="number" min="5" value="25">
            <label><input type="checkbox" name="giftaid"> Add Gift Aid</label>
            <button type="submit">Donate</button>
          </form>
          <script>
            const stripe = Stripe(document.getElementById("give-form").dataset.stripeKey);
          </script>
        </body>
        </html>
        """,
        "h27_stripe_pk",
        False,
    ),
    t(
        "advancement/donations/.env.production",
        r"""
        NODE_ENV=production
        PORT=8080
        PUBLIC_URL=https://give.avu.ac.uk
        STRIPE_SECRET_KEY={V}
        GIFTAID_DECLARATION_VERSION=2024-04
        """,
        "h27_stripe_sk",
        True,
    ),
    t(
        "advancement/mailchimp/sync_segments.py",
        r"""
        # Push reunion-year segments to Mailchimp before each alumni weekend.
        import mailchimp_marketing as MailchimpMarketing

        API_KEY = "{V}"

        client = MailchimpMarketing.Client()
        client.set_config({"api_key": API_KEY, "server": API_KEY.rsplit("-", 1)[1]})

        AUDIENCE_ID = "9c1b2d3e4f"


        def upsert_segment(name: str, emails: list[str]) -> None:
            seg = client.lists.create_segment(AUDIENCE_ID, {"name": name, "static_segment": emails})
            print(seg["id"], seg["member_count"])
        """,
        "h27_mailchimp",
        True,
    ),
    t(
        "advancement/gift-aid/submissions/2024-Q3-claim.xml",
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope">
          <EnvelopeVersion>2.0</EnvelopeVersion>
          <Header>
            <MessageDetails>
              <Class>HMRC-CHAR-CLM</Class>
              <Qualifier>request</Qualifier>
              <Function>submit</Function>
            </MessageDetails>
            <SenderDetails>
              <IDAuthentication>
                <SenderID>AVUCHARITY01</SenderID>
                <Authentication>
                  <Method>clear</Method>
                  <Role>principal</Role>
                  <Value>{V}</Value>
                </Authentication>
              </IDAuthentication>
            </SenderDetails>
          </Header>
          <Body>
            <IRenvelope xmlns="http://www.govtalk.gov.uk/taxation/charities/r68/2">
              <R68><Claim><OrgName>Ashworth Vale University</OrgName></Claim></R68>
            </IRenvelope>
          </Body>
        </GovTalkMessage>
        """,
        "h27_pw",
        True,
    ),
    t(
        "advancement/gift-aid/submissions/2024-Q2-claim.xml",
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope">
          <EnvelopeVersion>2.0</EnvelopeVersion>
          <Header>
            <MessageDetails>
              <Class>HMRC-CHAR-CLM</Class>
              <Function>submit</Function>
            </MessageDetails>
          </Header>
          <Body>
            <IRenvelope xmlns="http://www.govtalk.gov.uk/taxation/charities/r68/2">
              <IRheader>
                <Keys><Key Type="CHARID">XR12345</Key></Keys>
                <PeriodEnd>2024-06-30</PeriodEnd>
                <IRmark Type="generic">{V}</IRmark>
                <Sender>Company</Sender>
              </IRheader>
              <R68><Claim><OrgName>Ashworth Vale University</OrgName></Claim></R68>
            </IRenvelope>
          </Body>
        </GovTalkMessage>
        """,
        "h27_irmark",
        False,
    ),
    t(
        "advancement/docs/partner-bank-details.md",
        r"""
        # Bank details for the Politechnika Warmińska joint scholarship fund

        Transfers in PLN go to the partner's scholarship account:

        - Beneficiary: Politechnika Warmińska, ul. Słoneczna 12, 10-710 Olsztyn
        - IBAN: {V}
        - BIC: BPKOPLPW
        - Reference: `AVU-PW-SCHOL-<academic year>`

        Finance approval is needed for anything above 50 000 PLN.
        """,
        "h27_iban_pl",
        False,
    ),
]

# ---------------------------------------------------------------- campus Wi-Fi and eduroam RADIUS
TEMPLATES += [
    t(
        "network/freeradius/3.0/clients.conf",
        r"""
        # FreeRADIUS clients for the campus wireless controllers and the VPN.
        # Managed by Network Services -- changes go through CAB.

        client wlc-main-1 {
            ipaddr = 10.20.0.11
            secret = {V}
            shortname = wlc-main-1
            nas_type = cisco
            require_message_authenticator = yes
        }

        client wlc-main-2 {
            ipaddr = 10.20.0.12
            secret = {V}
            shortname = wlc-main-2
            nas_type = cisco
            require_message_authenticator = yes
        }

        client vpn-asa {
            ipaddr = 10.20.8.5
            secret = {V2}
            shortname = vpn
        }

        client clearpass-my {
            ipaddr = 172.22.4.20
            secret = {V3}
            shortname = avu-my
        }
        """,
        "h27_radius_secret",
        True,
    ),
    t(
        "network/freeradius/3.0/clients.conf.dist",
        r"""
        # Copy of the clients.conf shipped with the FreeRADIUS package, kept for reference.
        #
        #  The default secret below is only for testing, and should
        #  not be used in any real environment.
        #
        client localhost {
            ipaddr = 127.0.0.1
            proto = *
            secret = {V}
            require_message_authenticator = no
            nas_type = other
            limit {
                max_connections = 16
                lifetime = 0
                idle_timeout = 30
            }
        }
        """,
        "h27_doc_default",
        False,
    ),
    t(
        "network/freeradius/3.0/proxy.conf",
        r"""
        # eduroam: forward realms we do not own to the national proxies (Jisc FLRs).
        home_server eduroam-flr1 {
            type = auth+acct
            ipaddr = 194.82.174.185
            port = 1812
            secret = {V}
            status_check = status-server
            response_window = 20
        }

        home_server eduroam-flr2 {
            type = auth+acct
            ipaddr = 194.83.56.233
            port = 1812
            secret = {V}
            status_check = status-server
        }

        home_server_pool eduroam-pool {
            type = fail-over
            home_server = eduroam-flr1
            home_server = eduroam-flr2
        }

        realm "~.+$" {
            pool = eduroam-pool
            nostrip
        }

        realm avu.ac.uk {
        }
        """,
        "h27_radius_secret",
        True,
    ),
    t(
        "network/radsecproxy/radsecproxy.conf",
        r"""
        # radsecproxy on rad-my01 (AVU Malaysia): RadSec towards the APAN eduroam hub.
        ListenUDP *:1812
        LogLevel 3
        LogDestination file:///var/log/radsecproxy.log

        tls default {
            CACertificatePath /etc/radsecproxy/ca
            CertificateFile /etc/radsecproxy/rad-my01.pem
            CertificateKeyFile /etc/radsecproxy/rad-my01.key
        }

        server apan-hub {
            host tlrs.eduroam.my
            type tls
            # RadSec runs inside TLS; RFC 6614 fixes the shared secret to this well-known value.
            secret {V}
            certificateNameCheck on
        }

        realm * {
            server apan-hub
        }
        """,
        "h27_radsec_default",
        False,
    ),
    t(
        "network/wlc/c9800-main-running-config.txt",
        r"""
        !
        hostname avu-wlc-main-1
        !
        aaa new-model
        aaa group server radius ISE-GROUP
         server name RAD1
         server name RAD2
        !
        radius server RAD1
         address ipv4 10.20.1.21 auth-port 1812 acct-port 1813
         key 0 {V}
        !
        radius server RAD2
         address ipv4 10.20.1.22 auth-port 1812 acct-port 1813
         key 0 {V}
        !
        wlan eduroam 1 eduroam
         security dot1x authentication-list EDUROAM-AUTH
         no shutdown
        !
        end
        """,
        "h27_radius_secret",
        True,
    ),
    t(
        "network/wlc/c9800-lib-running-config.txt",
        r"""
        !
        hostname avu-wlc-lib-1
        !
        enable secret 9 {V}
        !
        username netops privilege 15 secret 9 {V2}
        username breakglass privilege 15 secret 9 {V3}
        !
        ip ssh version 2
        ip ssh time-out 60
        !
        end
        """,
        "h27_cisco_type9",
        False,
    ),
    t(
        "network/librenms/config.php",
        r"""
        <?php
        // LibreNMS on nms01 -- polling the switches, WLCs and the lab IoT gateways.
        $config['db_host'] = 'localhost';
        $config['db_user'] = 'librenms';
        $config['db_name'] = 'librenms';

        $config['snmp']['community'] = ['{V}'];
        $config['snmp']['version'] = ['v2c'];

        $config['nets'][] = '10.20.0.0/16';
        $config['nets'][] = '172.22.0.0/16';

        $config['discovery_by_ip'] = true;
        $config['update_channel'] = 'release';
        """,
        "h27_snmp_community",
        True,
    ),
    t(
        "network/eduroam/monitoring/wpa_supplicant-eduroam-probe.conf",
        r"""
        # eduroam probe on the Raspberry Pi in the Students' Union: authenticates every 5 minutes
        # with the dedicated test account and reports to Prometheus.
        ctrl_interface=/run/wpa_supplicant
        network={
            ssid="eduroam"
            key_mgmt=WPA-EAP
            eap=PEAP
            identity="eduroam-probe@avu.ac.uk"
            anonymous_identity="anonymous@avu.ac.uk"
            password="{V}"
            ca_cert="/etc/ssl/certs/avu-radius-ca.pem"
            domain_suffix_match="radius.avu.ac.uk"
            phase2="auth=MSCHAPV2"
        }
        """,
        "h27_pw",
        True,
    ),
    t(
        "network/eduroam/docs/linux-manual-setup.md",
        r"""
        # eduroam on Linux without the CAT installer

        Create `/etc/wpa_supplicant/eduroam.conf` with:

        ```
        network={
            ssid="eduroam"
            key_mgmt=WPA-EAP
            eap=PEAP
            identity="your.username@avu.ac.uk"
            anonymous_identity="anonymous@avu.ac.uk"
            password="{V}"
            ca_cert="/etc/ssl/certs/avu-radius-ca.pem"
            domain_suffix_match="radius.avu.ac.uk"
            phase2="auth=MSCHAPV2"
        }
        ```

        Always set `domain_suffix_match`; without it your password can be captured by a rogue
        access point.
        """,
        "h27_placeholder_en",
        False,
    ),
    t(
        "network/eduroam/docs/server-certificate.md",
        r"""
        # RADIUS server certificate (2024-2026)

        Devices that ask you to confirm the server certificate should show:

        - Subject: `CN=radius.avu.ac.uk`
        - Issuer: `CN=AVU Network CA 2024`
        - SHA-256 fingerprint: `{V}`
        - Previous certificate (expired 2024-09-30): `{V2}`

        If the fingerprint is different, do **not** connect, and report it to the IT Service Desk.
        """,
        "h27_cert_fpr",
        False,
    ),
    t(
        "network/iot/ssid-labiot.yaml",
        r"""
        # WPA2-PSK network for lab instruments and freezer sensors that cannot do 802.1X.
        # Pushed to the WLCs by the network automation pipeline.
        wlan:
          profile: AVU-LabIoT
          ssid: AVU-LabIoT
          vlan: 341
          hidden: true
          security:
            mode: wpa2-personal
            psk: "{V}"
          mac_filtering: true
          allowed_buildings:
            - Chemistry
            - Life Sciences
            - Engineering Workshops
        """,
        "h27_wpa_psk",
        True,
    ),
    t(
        "network/eduroam/docs/eduroam-pl.md",
        r"""
        # eduroam dla gości z Politechniki Warmińskiej

        Goście z PW-Olsztyn logują się do eduroam swoim kontem z macierzystej uczelni:

        - Tożsamość: `login@pwarm.edu.pl`
        - Hasło: `{V}` (to samo co do USOSweb)
        - Certyfikat CA: pobierz instalator z https://cat.eduroam.org

        W razie problemów prosimy o kontakt z helpdeskiem AVU: servicedesk@avu.ac.uk.
        """,
        "h27_placeholder_pl",
        False,
    ),
    t(
        "network/eduroam/docs/eduroam-ms.md",
        r"""
        # Sambungan eduroam untuk pelajar AVU Malaysia

        1. Muat turun pemasang eduroam CAT untuk "Ashworth Vale University Malaysia".
        2. Masukkan butiran berikut apabila diminta:
           - Nama pengguna: `nomborpelajar@avu.edu.my`
           - Kata laluan: `{V}`
        3. Jangan sekali-kali kongsi kata laluan anda dengan sesiapa, termasuk staf IT.

        Hubungi Meja Bantuan IT (samb. 2200) jika sambungan gagal.
        """,
        "h27_placeholder_ms",
        False,
    ),
]

# ---------------------------------------------------------------- labs and instruments
TEMPLATES += [
    t(
        "labs/chemistry/massspec/Sync-OrbitrapRaw.ps1",
        r"""
        # Copies new .raw files from the Orbitrap acquisition PC to the research data store.
        # Runs every 30 min as a scheduled task on ms-proc01.
        $Source = "\\ms-orbitrap-01\Xcalibur\data"
        $Dest   = "\\rds.avu.ac.uk\chem-massspec\raw"

        net use \\ms-orbitrap-01\Xcalibur /user:MS-ORBITRAP-01\instrument {V} /persistent:no | Out-Null

        robocopy $Source $Dest *.raw /XO /R:2 /W:10 /NP /LOG+:C:\logs\orbitrap-sync.log

        net use \\ms-orbitrap-01\Xcalibur /delete | Out-Null
        """,
        "h27_weak_pw",
        True,
    ),
    t(
        "labs/imaging/omero/upload_plate.py",
        r"""
        # Upload a screening plate from the Opera Phenix export folder into OMERO.
        import sys

        from omero.gateway import BlitzGateway

        HOST = "omero.imaging.avu.ac.uk"


        def main(folder: str, dataset_id: int) -> None:
            conn = BlitzGateway("svc-phenix", "{V}", host=HOST, port=4064, secure=True)
            if not conn.connect():
                sys.exit("OMERO login failed")
            try:
                ds = conn.getObject("Dataset", dataset_id)
                print("uploading", folder, "to", ds.getName())
            finally:
                conn.close()


        if __name__ == "__main__":
            main(sys.argv[1], int(sys.argv[2]))
        """,
        "h27_pw",
        True,
    ),
    t(
        "labs/imaging/omero/upload_tiles.py",
        r"""
        # Same as upload_plate.py but for the light-sheet tiles; credentials come from the
        # user running it.
        import getpass
        import os
        import sys

        from omero.gateway import BlitzGateway

        user = os.environ.get("OMERO_USER") or input("OMERO user: ")
        password = {V}
        conn = BlitzGateway(user, password, host="omero.imaging.avu.ac.uk", port=4064, secure=True)
        if not conn.connect():
            sys.exit("login failed")
        """,
        "h27_py_ref",
        False,
    ),
    t(
        "labs/biosciences/freezer-monitor/config/mqtt.toml",
        r"""
        # Freezer monitor gateway (Rust, runs on the Pi in LS-2.07)
        [mqtt]
        host = "mqtt.labiot.avu.ac.uk"
        port = 8883
        client_id = "freezer-gw-ls207"
        username = "freezer-gw"
        password = "{V}"
        tls_ca = "/etc/freezer-gw/labiot-ca.pem"
        topic_prefix = "avu/ls/freezers"

        [alerts]
        threshold_c = -70.0
        grace_minutes = 10
        """,
        "h27_pw",
        True,
    ),
    t(
        "labs/biosciences/freezer-monitor/provisioning/lorawan-devices.csv",
        r"""
        # Import file for The Things Stack (AVU tenant). Generated by the provisioning script.
        dev_eui,join_eui,app_key,name,location
        70B3D57ED0061A21,70B3D57ED0001F00,{V},ult-freezer-01,LS-2.07
        70B3D57ED0061A22,70B3D57ED0001F00,{V2},ult-freezer-02,LS-2.07
        70B3D57ED0061A23,70B3D57ED0001F00,{V3},ln2-dewar-01,LS-B.12
        """,
        "h27_hex32",
        True,
    ),
    t(
        "labs/biosciences/freezer-monitor/config/devices.yaml",
        r"""
        # Sensor inventory: identifiers only. Join keys live in The Things Stack.
        devices:
          - name: ult-freezer-01
            dev_eui: "{V}"
            model: Elsys ERS-ULT
            room: LS-2.07
          - name: ult-freezer-02
            dev_eui: "{V2}"
            model: Elsys ERS-ULT
            room: LS-2.07
          - name: cold-room-probe
            dev_eui: "{V3}"
            model: Milesight EM300-TH
            room: LS-B.03
        """,
        "h27_eui64",
        False,
    ),
    t(
        "labs/chemistry/nmr/archive_topspin.sh",
        r"""
        #!/bin/bash
        # Nightly archive of TopSpin data from the 600 MHz spectrometer workstation.
        set -eu
        SRC=/opt/topspin4.3/data
        DEST=nmr-archive@rds-gw.avu.ac.uk:/rds/projects/chem-nmr/archive/$(date +%Y)

        sshpass -p '{V}' rsync -az --partial --exclude '*.tmp' "$SRC/" "$DEST/"
        echo "$(date -Is) archived" >> /var/log/nmr-archive.log
        """,
        "h27_pw",
        True,
    ),
    t(
        "labs/engineering/instruments/inventory.csv",
        r"""
        asset_tag,make,model,serial,room,calibration_due
        ENG-00412,Keysight,DSOX3024T,{V},ENG-1.14,2025-03-01
        ENG-00413,Rohde & Schwarz,RTB2004,{V2},ENG-1.14,2025-05-19
        ENG-00520,Instron,5967,{V3},ENG-G.02,2025-01-31
        """,
        "h27_instr_serial",
        False,
    ),
    t(
        "labs/engineering/matlab/lims_query.m",
        r"""
        function samples = lims_query(projectCode)
        %LIMS_QUERY Return the LIMS sample records for a project.
        %   samples = lims_query('ENG-2024-017')
            baseUrl = 'https://lims.eng.avu.ac.uk/api/v2/samples';
            token = '{V}';
            opts = weboptions('HeaderFields', {'Authorization', ['Bearer ' token]}, ...
                              'Timeout', 30, 'ContentType', 'json');
            samples = webread(baseUrl, 'project', projectCode, opts);
        end
        """,
        "h27_bearer",
        True,
    ),
    t(
        "labs/engineering/matlab/lims_upload.m",
        r"""
        function lims_upload(sampleId, resultFile)
        %LIMS_UPLOAD Attach a result file to a LIMS sample.
            token = {V};
            if isempty(token)
                error('lims:noToken', 'Set LIMS_TOKEN before calling lims_upload');
            end
            opts = weboptions('HeaderFields', {'Authorization', ['Bearer ' token]}, 'Timeout', 120);
            websave(tempname, sprintf('https://lims.eng.avu.ac.uk/api/v2/samples/%s/files', sampleId), opts);
        end
        """,
        "h27_matlab_ref",
        False,
    ),
    t(
        "labs/engineering/labview/TensileRig/config/daq.ini",
        r"""
        [Rig]
        Name="Tensile rig 2"
        LoadCellRange=50kN
        SampleRateHz=1000

        [Database]
        Server="sql-labs.eng.avu.ac.uk"
        Database="TensileResults"
        User="labview_rig2"
        Password="{V}"
        """,
        "h27_weak_pw",
        True,
    ),
    t(
        "labs/biosciences/lims/sample-manifest.json",
        r"""
        {
          "run": "NOVASEQ-2024-10-03-A",
          "instrument": "NovaSeq X",
          "files": [
            {"path": "Sample_0412_R1.fastq.gz", "sha256": "{V}"},
            {"path": "Sample_0412_R2.fastq.gz", "sha256": "{V2}"},
            {"path": "SampleSheet.csv", "sha256": "{V3}"}
          ]
        }
        """,
        "h27_sha256",
        False,
    ),
    t(
        "labs/physics/alerts/telegram_notify.py",
        r"""
        # Tells the cryostat group's Telegram chat when the dilution fridge warms up.
        import requests

        BOT_TOKEN = "{V}"
        CHAT_ID = -1001857230011


        def notify(text: str) -> None:
            requests.post(
                f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage",
                json={"chat_id": CHAT_ID, "text": text},
                timeout=10,
            )
        """,
        "h27_telegram",
        True,
    ),
    t(
        "labs/psychology/surveys/export_qualtrics.R",
        r"""
        # Export the weekly wellbeing survey responses for the Psychology panel study.
        library(qualtRics)
        library(readr)

        qualtrics_api_credentials(
          api_key = {V},
          base_url = "avu.eu.qualtrics.com",
          install = FALSE
        )

        responses <- fetch_survey(surveyID = "SV_3fRk2bLzQp8yTnE", verbose = TRUE)
        write_csv(responses, "data/raw/wellbeing_responses.csv")
        """,
        "h27_r_ref",
        False,
    ),
    t(
        "labs/psychology/surveys/export_qualtrics_old.R",
        r"""
        # Old version kept for the 2022 cohort -- superseded by export_qualtrics.R
        library(qualtRics)

        qualtrics_api_credentials(
          api_key = "{V}",
          base_url = "avu.eu.qualtrics.com",
          install = FALSE
        )

        responses <- fetch_survey(surveyID = "SV_0qW8nX4cVb2aDkM")
        saveRDS(responses, "data/raw/wellbeing_2022.rds")
        """,
        "h27_alnum40",
        True,
    ),
]

# ---------------------------------------------------------------- AVU Malaysia (branch campus)
TEMPLATES += [
    t(
        "my-campus/payments/ipay88/config.php",
        r"""
        <?php
        // iPay88 settings for tuition and hostel fee payments (AVU Malaysia Sdn. Bhd.)
        return [
            'merchant_code' => 'M18273',
            'merchant_key'  => '{V}',
            'currency'      => 'MYR',
            'response_url'  => 'https://pay.avu.edu.my/ipay88/response',
            'backend_url'   => 'https://pay.avu.edu.my/ipay88/backend',
            'payment_ids'   => [2 => 'Credit card', 16 => 'FPX', 210 => "Touch 'n Go eWallet"],
        ];
        """,
        "h27_ipay88_key",
        True,
    ),
    t(
        "my-campus/payments/billplz/client.go",
        r"""
        package billplz

        import (
        	"bytes"
        	"encoding/json"
        	"net/http"
        	"time"
        )

        const (
        	baseURL      = "https://www.billplz.com/api/v3"
        	apiSecretKey = "{V}"
        	collectionID = "inbmmepb"
        )

        type Bill struct {
        	CollectionID string `json:"collection_id"`
        	Email        string `json:"email"`
        	Name         string `json:"name"`
        	Amount       int    `json:"amount"`
        	CallbackURL  string `json:"callback_url"`
        	Description  string `json:"description"`
        }

        func CreateBill(b Bill) (*http.Response, error) {
        	b.CollectionID = collectionID
        	body, _ := json.Marshal(b)
        	req, _ := http.NewRequest(http.MethodPost, baseURL+"/bills", bytes.NewReader(body))
        	req.SetBasicAuth(apiSecretKey, "")
        	req.Header.Set("Content-Type", "application/json")
        	return (&http.Client{Timeout: 20 * time.Second}).Do(req)
        }
        """,
        "h27_billplz_key",
        True,
    ),
    t(
        "my-campus/payments/billplz/callback_test.go",
        r"""
        package billplz

        import "testing"

        // Fixtures copied from a sandbox callback; x_signature is the HMAC Billplz computed over
        // the other fields, not a key.
        var callbacks = []map[string]string{
        	{"id": "8x7qpzvn", "paid": "true", "state": "paid", "x_signature": "{V}"},
        	{"id": "b2kd9wfa", "paid": "false", "state": "due", "x_signature": "{V2}"},
        }

        func TestCallbackFixtures(t *testing.T) {
        	for _, c := range callbacks {
        		if len(c["x_signature"]) != 64 {
        			t.Fatalf("bad fixture %s", c["id"])
        		}
        	}
        }
        """,
        "h27_sha256",
        False,
    ),
    t(
        "my-campus/docs/dasar-kata-laluan.md",
        r"""
        # Dasar kata laluan AVU Malaysia

        Semua akaun staf dan pelajar mesti mematuhi dasar berikut:

        - Panjang minimum kata laluan: {V} aksara
        - Kata laluan tidak boleh mengandungi nama atau nombor pelajar anda
        - Pengesahan dua faktor (Microsoft Authenticator) wajib untuk staf
        - Akaun dikunci selepas 10 percubaan gagal

        Mesej yang dipaparkan di portal: "Kata laluan mestilah sekurang-kurangnya 12 aksara".
        """,
        "h27_policy",
        False,
    ),
    t(
        "my-campus/docs/serah-tugas-it-2024.md",
        r"""
        # Nota serah tugas -- Unit IT AVU Malaysia (Ogos 2024)

        Disediakan oleh: Faizal (akan bercuti panjang mulai 1 Sept)

        ## Pelayan
        - `my-app01` -- portal yuran, PHP 8.2, Nginx
        - `my-db01` -- MySQL 8, replika ke `my-db02`

        ## Akaun
        - Akaun root MySQL `my-db01`: kata laluan `{V}`
        - Panel iPay88: log masuk dengan akaun `itadmin@avu.edu.my` (2FA pada telefon unit)

        ## Perkara tertunggak
        - Tukar sijil SSL `pay.avu.edu.my` sebelum 15 Okt
        - Migrasi Canvas ke SSO Entra ID
        """,
        "h27_pw",
        True,
    ),
    t(
        "my-campus/docs/serah-tugas-it-2025.md",
        r"""
        # Nota serah tugas -- Unit IT AVU Malaysia (Jan 2025)

        ## Akaun
        - Akaun root MySQL `my-db01`: kata laluan {V}
        - Semua kata laluan pentadbir kini disimpan dalam Bitwarden, koleksi "AVU-MY Infra".
          Jangan tulis kata laluan dalam dokumen ini lagi.
        """,
        "h27_placeholder_ms",
        False,
    ),
    t(
        "my-campus/portal/src/i18n/ms.json",
        r"""
        {
          "login": {
            "title": "Log masuk ke Portal Pelajar",
            "username": "ID Pelajar",
            "password": "Kata laluan",
            "passwordPlaceholder": "{V}",
            "submit": "Log masuk"
          },
          "reset": {
            "title": "Set semula kata laluan",
            "mismatch": "{V2}"
          }
        }
        """,
        "h27_ui_ms",
        False,
    ),
    t(
        "my-campus/chat/whatsapp-it-helpdesk-2024-03.txt",
        r"""
        12/03/2024, 09:14 - Aina (Pendaftaran): Salam, saya tak boleh log masuk ke Canvas pagi ni
        12/03/2024, 09:16 - Hafiz IT: Wsalam. Akaun kak Aina terkunci, saya dah reset
        12/03/2024, 09:16 - Hafiz IT: kata laluan sementara: {V}
        12/03/2024, 09:17 - Hafiz IT: sila tukar lepas log masuk ya
        12/03/2024, 09:21 - Aina (Pendaftaran): Ok dah masuk, terima kasih!
        """,
        "h27_weak_pw",
        True,
    ),
]

# ---------------------------------------------------------------- Politechnika Warmińska (partner)
TEMPLATES += [
    t(
        "pl-partner/usos/usos_client.py",
        r"""
        # Pobieranie list studentów wymiany z USOS API (PW-Olsztyn) -- OAuth 1.0a.
        from requests_oauthlib import OAuth1Session

        USOS_BASE = "https://usosapps.pwarm.edu.pl/services"
        CONSUMER_KEY = "Hq3LrV8mZt2KcX9pWn4d"
        CONSUMER_SECRET = "{V}"


        def exchange_students(term: str) -> list[dict]:
            session = OAuth1Session(CONSUMER_KEY, client_secret=CONSUMER_SECRET)
            resp = session.get(
                f"{USOS_BASE}/mobility/exchange_students",
                params={"term_id": term, "fields": "id|first_name|last_name|home_institution"},
                timeout=30,
            )
            resp.raise_for_status()
            return resp.json()
        """,
        "h27_usos_secret",
        True,
    ),
    t(
        "pl-partner/usos/README.pl.md",
        r"""
        # Integracja USOS API

        Skrypt pobiera listę studentów wymiany z USOS PW-Olsztyn i przekazuje ją do SITS.

        ## Konfiguracja

        Utwórz plik `.env`:

        ```
        USOS_CONSUMER_KEY=<klucz konsumenta z usosapps>
        USOS_CONSUMER_SECRET={V}
        ```

        Klucze wydaje Dział Informatyzacji PW; nie umieszczaj ich w repozytorium.
        """,
        "h27_placeholder_pl",
        False,
    ),
    t(
        "pl-partner/payments/przelewy24/config.php",
        r"""
        <?php
        // Opłaty za kursy letnie -- Przelewy24 (środowisko produkcyjne)
        return [
            'merchant_id' => 218734,
            'pos_id'      => 218734,
            'crc'         => '{V}',
            'api_url'     => 'https://secure.przelewy24.pl/api/v1',
            'return_url'  => 'https://summer.pwarm.edu.pl/platnosc/powrot',
            'status_url'  => 'https://summer.pwarm.edu.pl/platnosc/status',
        ];
        """,
        "h27_hex16",
        True,
    ),
    t(
        "pl-partner/payments/przelewy24/tests/SignTest.php",
        r"""
        <?php
        use PHPUnit\Framework\TestCase;

        final class SignTest extends TestCase
        {
            // Oczekiwane podpisy (SHA-384) policzone w panelu sandbox dla stałych danych testowych.
            private const EXPECTED = [
                'order-1001' => '{V}',
                'order-1002' => '{V2}',
            ];

            public function testSignatures(): void
            {
                foreach (self::EXPECTED as $session => $sign) {
                    $this->assertSame(96, strlen($sign), $session);
                }
            }
        }
        """,
        "h27_sha384",
        False,
    ),
    t(
        "pl-partner/ewp/keys/ewp-client-2024.key",
        r"""
        {V}
        """,
        "h27_rsa_key",
        True,
    ),
    t(
        "pl-partner/ewp/manifest/manifest.xml",
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <mf6:manifest xmlns:mf6="https://github.com/erasmus-without-paper/ewp-specs-api-discovery/tree/stable-v6"
                      xmlns:ewp="https://github.com/erasmus-without-paper/ewp-specs-architecture/blob/stable-v1/common-types.xsd">
          <mf6:host>
            <ewp:admin-email>ewp-admin@pwarm.edu.pl</ewp:admin-email>
            <mf6:client-credentials-in-use>
              <mf6:rsa-public-key>{V}</mf6:rsa-public-key>
            </mf6:client-credentials-in-use>
            <mf6:server-credentials-in-use>
              <mf6:rsa-public-key>{V2}</mf6:rsa-public-key>
            </mf6:server-credentials-in-use>
          </mf6:host>
        </mf6:manifest>
        """,
        "h27_pubkey_b64",
        False,
    ),
    t(
        "pl-partner/webapp/src/main/resources/messages_pl.properties",
        r"""
        login.title=Logowanie do systemu wymiany
        login.username=Login
        login.password=Hasło
        login.password.invalid={V}
        login.password.forgot=Nie pamiętasz hasła?
        account.token.label=Token API
        """,
        "h27_ui_pl",
        False,
    ),
    t(
        "pl-partner/docs/notatki-wdrozenie-2024.md",
        r"""
        # Notatki z wdrożenia portalu wymiany (PW-Olsztyn / AVU)

        Spotkanie 2024-05-14, obecni: A. Kowalska, P. Wiśniewski, J. Barker (AVU)

        - Serwer: `ewp-app.pwarm.edu.pl`, PostgreSQL 15 na tej samej maszynie
        - Użytkownik bazy `ewp_app`, hasło do bazy: {V}
        - Certyfikat TLS odnawia certbot (cron o 03:10)
        - Do zrobienia: przenieść hasło do Vaulta po stronie AVU (J. Barker)
        """,
        "h27_pw",
        True,
    ),
    t(
        "pl-partner/tickets/PW-HELPDESK-4127.json",
        r"""
        {
          "key": "PW-HELPDESK-4127",
          "summary": "Reset hasła do konta ewp_app",
          "status": "Zamknięte",
          "comments": [
            {"author": "pwisniewski", "body": "Hasło zresetowane, nowe hasło: {V} -- przekazane telefonicznie."},
            {"author": "akowalska", "body": "Potwierdzam, aplikacja działa. Zamykam zgłoszenie."}
          ]
        }
        """,
        "h27_placeholder_pl",
        False,
    ),
]

# ---------------------------------------------------------------- identity and access
TEMPLATES += [
    t(
        "identity/shibboleth-idp/credentials/secrets.properties",
        r"""
        # This is a reserved spot for most properties containing passwords or other secrets.
        # Created by install at 2021-08-19T10:12:44Z; edited for the 2024 LDAP move.

        # Access to internal AES encryption key
        idp.sealer.storePassword = {V}
        idp.sealer.keyPassword = {V}

        # Default access to LDAP authn and attribute stores.
        idp.authn.LDAP.bindDNCredential              = {V2}
        idp.attribute.resolver.LDAP.bindDNCredential = %{idp.authn.LDAP.bindDNCredential:undefined}

        # Salt used to generate persistent/pairwise IDs, must be kept secret
        idp.persistentId.salt = {V3}
        """,
        "h27_pw",
        True,
    ),
    t(
        "identity/shibboleth-idp/conf/ldap.properties",
        r"""
        # LDAP authentication and attribute resolution (AD via the global catalog).
        idp.authn.LDAP.authenticator                   = bindSearchAuthenticator
        idp.authn.LDAP.ldapURL                         = ldaps://gc.ad.avu.ac.uk:3269
        idp.authn.LDAP.useStartTLS                     = false
        idp.authn.LDAP.baseDN                          = DC=ad,DC=avu,DC=ac,DC=uk
        idp.authn.LDAP.subtreeSearch                   = true
        idp.authn.LDAP.userFilter                      = (sAMAccountName={user})
        idp.authn.LDAP.bindDN                          = CN=svc-shib,OU=Service Accounts,DC=ad,DC=avu,DC=ac,DC=uk
        idp.authn.LDAP.bindDNCredential                = {V}
        idp.attribute.resolver.LDAP.bindDNCredential   = {V}
        """,
        "h27_shib_ref",
        False,
    ),
    t(
        "identity/shibboleth-sp/etc/shibboleth/sp-signing-cert.pem",
        r"""
        {V}
        """,
        "h27_cert",
        False,
    ),
    t(
        "identity/entra/apps/portal.tf",
        r"""
        terraform {
          required_providers {
            azuread = {
              source  = "hashicorp/azuread"
              version = "~> 2.47"
            }
          }
        }

        provider "azuread" {
          tenant_id     = "avu.onmicrosoft.com"
          client_id     = "portal-automation"
          client_secret = "{V}"
        }

        resource "azuread_application" "student_portal" {
          display_name     = "AVU Student Portal"
          sign_in_audience = "AzureADMyOrg"
          web {
            redirect_uris = ["https://portal.avu.ac.uk/signin-oidc"]
          }
        }
        """,
        "h27_azure_secret",
        True,
    ),
    t(
        "identity/entra/apps/library.tf",
        r"""
        resource "azuread_application" "library_ezproxy" {
          display_name = "AVU Library EZproxy"
        }

        resource "azuread_application_password" "library_ezproxy" {
          application_id = azuread_application.library_ezproxy.id
          display_name   = "ezproxy-oidc"
          end_date       = "2026-09-30T00:00:00Z"
        }

        resource "azurerm_key_vault_secret" "ezproxy_client_secret" {
          name         = "ezproxy-client-secret"
          value        = {V}
          key_vault_id = data.azurerm_key_vault.library.id
        }
        """,
        "h27_tf_ref",
        False,
    ),
    t(
        "identity/entra/app-registrations.json",
        r"""
        [
          {
            "displayName": "AVU Student Portal",
            "appId": "{V}",
            "tenantId": "{V2}",
            "signInAudience": "AzureADMyOrg"
          },
          {
            "displayName": "AVU Library EZproxy",
            "appId": "{V3}",
            "tenantId": "{V2}",
            "signInAudience": "AzureADMyOrg"
          }
        ]
        """,
        "h27_uuid",
        False,
    ),
    t(
        "identity/duo/login_duo.conf",
        r"""
        ; Duo Unix on the HPC login nodes and the research SFTP gateway.
        [duo]
        ikey = DIWJ8X1MRU7F3K2Q9PLA
        skey = {V}
        host = api-4f2a91c3.duosecurity.com
        failmode = secure
        pushinfo = yes
        autopush = yes
        groups = hpc-users,!hpc-svc
        """,
        "h27_duo_skey",
        True,
    ),
    t(
        "identity/duo/authproxy.cfg",
        r"""
        ; Duo Authentication Proxy on dap01 (Windows). Secrets were encrypted in place with
        ; authproxy_passwd.exe, so they only decrypt on this machine.
        [main]
        debug=false

        [ad_client]
        host=dc01.ad.avu.ac.uk
        host_2=dc02.ad.avu.ac.uk
        service_account_username=svc-duoproxy
        service_account_password_protected={V}
        search_dn=DC=ad,DC=avu,DC=ac,DC=uk

        [radius_server_auto]
        ikey=DIK3R7QW2XN9B5YT1MVC
        skey_protected={V2}
        api_host=api-4f2a91c3.duosecurity.com
        radius_ip_1=10.20.8.5
        client=ad_client
        failmode=safe
        """,
        "h27_dpapi",
        False,
    ),
    t(
        "identity/google-workspace/gam/oauth2service.json",
        r"""
        {
          "type": "service_account",
          "project_id": "avu-gam-project",
          "private_key_id": "c2f81e0b7a4d4f59b1d2e6a3c9f07d18e5b4a2c1",
          "private_key": "{V}",
          "client_email": "gam-project-avu@avu-gam-project.iam.gserviceaccount.com",
          "client_id": "108374629150384756201",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
        "h27_gcp_key",
        True,
    ),
    t(
        "identity/google-workspace/gam/key-inventory.json",
        r"""
        {
          "note": "Key ids of the GAM service account, from `gam print sakeys`; the keys themselves are not here.",
          "keys": [
            {"private_key_id": "{V}", "created": "2023-09-01", "status": "disabled"},
            {"private_key_id": "{V2}", "created": "2024-09-02", "status": "active"}
          ]
        }
        """,
        "h27_sha1",
        False,
    ),
    t(
        "identity/keycloak/realm-export/avu-users-0.json",
        r"""
        {
          "realm": "avu",
          "users": [
            {
              "username": "breakglass-admin",
              "enabled": true,
              "credentials": [
                {
                  "type": "password",
                  "createdDate": 1712052000000,
                  "secretData": "{V}",
                  "credentialData": "{\"hashIterations\":27500,\"algorithm\":\"pbkdf2-sha256\",\"additionalParameters\":{}}"
                }
              ]
            }
          ]
        }
        """,
        "h27_kc_secretdata",
        False,
    ),
    t(
        "identity/linux/incidents/INC0043310-shadow-excerpt.txt",
        r"""
        INC0043310 -- compromised web server web-old03 (retired)
        Excerpt of /etc/shadow taken for the investigation (hashes only, accounts since removed):

        root:{V}:19612:0:99999:7:::
        webadmin:{V2}:19480:0:99999:7:::
        deploy:!:19480:0:99999:7:::
        """,
        "h27_sha512crypt",
        False,
    ),
    t(
        "identity/ldap/scripts/find-stale-accounts.sh",
        r"""
        #!/bin/sh
        # List AD accounts that have not logged in for 400 days (read-only bind).
        BASE="OU=Staff,DC=ad,DC=avu,DC=ac,DC=uk"
        CUTOFF=$(date -d '-400 days' +%Y%m%d000000.0Z)

        ldapsearch -LLL -H ldaps://gc.ad.avu.ac.uk:3269 \
          -D "CN=svc-audit,OU=Service Accounts,DC=ad,DC=avu,DC=ac,DC=uk" \
          -y {V} \
          -b "$BASE" "(lastLogonTimestamp<=$CUTOFF)" sAMAccountName lastLogonTimestamp
        """,
        "h27_secret_path",
        False,
    ),
]

# ---------------------------------------------------------------- platform, CI and operations
TEMPLATES += [
    t(
        "platform/docker/config.json",
        r"""
        {
          "auths": {
            "harbor.avu.ac.uk": {
              "auth": "{V}"
            }
          },
          "credHelpers": {
            "avuacr.azurecr.io": "acr-env"
          }
        }
        """,
        "h27_docker_auth",
        True,
    ),
    t(
        "platform/aws/research-account/credentials",
        r"""
        [default]
        region = eu-west-2

        [avu-research-archive]
        {V}
        region = eu-west-2
        """,
        "h27_aws_ini_pair",
        True,
    ),
    t(
        "platform/docs/aws-cli-setup.md",
        r"""
        # AWS CLI for the research archive account

        Use SSO (`aws configure sso`) -- long-lived keys are not issued any more. If a vendor tool
        insists on keys, its docs show the shape:

        ```ini
        [vendor-tool]
        aws_access_key_id = {V}
        aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
        ```

        Ask the Cloud team for a scoped IAM user instead of reusing anyone's keys.
        """,
        "h27_aws_example",
        False,
    ),
    t(
        "platform/jenkins/Jenkinsfile.sis-deploy",
        r"""
        pipeline {
          agent { label 'linux-docker' }
          options { timestamps() }
          stages {
            stage('Build') {
              steps { sh './mvnw -B -DskipTests package' }
            }
            stage('Deploy') {
              steps {
                withEnv(["SPLUNK_HEC_URL=https://splunk-hec.avu.ac.uk:8088",
                         "SPLUNK_HEC_TOKEN={V}"]) {
                  sh './deploy/deploy.sh records-api'
                }
              }
            }
          }
        }
        """,
        "h27_splunk_hec",
        True,
    ),
    t(
        "platform/jenkins/casc/credentials.yaml",
        r"""
        credentials:
          system:
            domainCredentials:
              - credentials:
                  - usernamePassword:
                      scope: GLOBAL
                      id: harbor-robot
                      username: "robot$avu-ci"
                      password: "{V}"
                  - string:
                      scope: GLOBAL
                      id: splunk-hec-token
                      secret: "{V2}"
        """,
        "h27_jenkins_enc",
        False,
    ),
    t(
        "platform/monitoring/alertmanager/alertmanager.yml",
        r"""
        global:
          resolve_timeout: 5m
          slack_api_url: '{V}'

        route:
          receiver: sis-oncall
          group_by: [alertname, service]
          routes:
            - matchers: [team="hpc"]
              receiver: hpc-channel

        receivers:
          - name: sis-oncall
            slack_configs:
              - channel: '#sis-alerts'
                send_resolved: true
          - name: hpc-channel
            slack_configs:
              - channel: '#hpc-ops'
        """,
        "h27_slack_webhook",
        True,
    ),
    t(
        "platform/monitoring/alertmanager/README.md",
        r"""
        # Alertmanager

        The real webhook URL is mounted from the `alertmanager-slack` secret and read with
        `slack_api_url_file`. For a local test, any URL of this shape works with the mock server:

        ```yaml
        global:
          slack_api_url: '{V}'
        ```
        """,
        "h27_slack_example",
        False,
    ),
    t(
        "research/ml-lab/.env",
        r"""
        # Vision & Language Lab -- local dev settings
        DATA_DIR=/scratch/vll/data
        OPENAI_API_KEY={V}
        OPENAI_ORG=org-avu-vll
        MAX_CONCURRENCY=4
        """,
        "h27_openai",
        True,
    ),
    t(
        "research/ml-lab/README.md",
        r"""
        # vll-eval

        Evaluation harness for the lab's captioning models.

        1. Copy `.env.example` to `.env`.
        2. Set `OPENAI_API_KEY={V}` (ask Dr Rahman for a project key; never use a personal one).
        3. `uv run vll-eval --suite coco-mini`
        """,
        "h27_doc_placeholder",
        False,
    ),
    t(
        "platform/tickets/INC0045521.md",
        r"""
        **INC0045521** -- Timetabling sync returns 401 from records API
        Priority: P3  |  Assignment group: Student Systems

        ---

        *Reporter (Timetabling Office), 2024-11-04 09:12*

        The nightly sync failed again. I can reproduce it with:

        ```
        curl -s https://sis-api.avu.ac.uk/v2/modules?year=2024 \
          -H "Authorization: Bearer {V}"
        ```

        and get `{"error":"invalid_token"}`.

        *Student Systems, 2024-11-04 10:40*

        The signing key was rotated on Friday; tokens issued before then are rejected. Please
        request a new one through the API portal.
        """,
        "h27_jwt",
        True,
    ),
    t(
        "platform/scripts/sync-github-mirrors.sh",
        r"""
        #!/usr/bin/env bash
        # Mirror the public teaching repos from GitLab to the AVU GitHub org.
        set -euo pipefail

        GITHUB_TOKEN={V}
        ORG=ashworth-vale

        for repo in cs1010-labs data-science-intro robotics-club; do
          git clone --mirror "https://gitlab.cs.avu.ac.uk/teaching/${repo}.git" "/tmp/${repo}.git"
          git -C "/tmp/${repo}.git" push --mirror "https://x-access-token:${GITHUB_TOKEN}@github.com/${ORG}/${repo}.git"
          rm -rf "/tmp/${repo}.git"
        done
        """,
        "h27_github",
        True,
    ),
    t(
        "platform/k8s/portal/db-secret.yaml",
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: portal-db-credentials
          namespace: student-portal
        type: Opaque
        data:
          username: cG9ydGFsX2FwcA==
          password: {V}
        """,
        "h27_b64_pw",
        True,
    ),
    t(
        "platform/k8s/portal/deployment.yaml",
        r"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: student-portal
          namespace: student-portal
        spec:
          replicas: 3
          selector:
            matchLabels: {app: student-portal}
          template:
            metadata:
              labels: {app: student-portal}
            spec:
              containers:
                - name: portal
                  image: harbor.avu.ac.uk/sis/student-portal:2024.11.2
                  env:
                    - name: DB_USER
                      value: portal_app
                    - name: DB_PASSWORD
                      valueFrom:
                        secretKeyRef:
                          name: {V}
                          key: password
        """,
        "h27_secret_name",
        False,
    ),
    t(
        "platform/k8s/moodle/sealed-db.yaml",
        r"""
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: moodle-db
          namespace: moodle
        spec:
          encryptedData:
            password: {V}
          template:
            metadata:
              name: moodle-db
              namespace: moodle
        """,
        "h27_sealed",
        False,
    ),
    t(
        "platform/helm/moodle/values-prod.enc.yaml",
        r"""
        moodle:
            siteName: AVU Learn
            dbUser: moodle
            dbPassword: {V}
            smtpPassword: {V2}
        sops:
            age:
                - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
            lastmodified: "2024-10-02T08:14:51Z"
            version: 3.9.0
        """,
        "h27_sops",
        False,
    ),
    t(
        "platform/compose/library-dev/docker-compose.yml",
        r"""
        services:
          db:
            image: postgres:16
            environment:
              POSTGRES_USER: dspace
              POSTGRES_PASSWORD_FILE: {V}
            secrets:
              - postgres_password
          dspace:
            image: dspace/dspace:8.0
            depends_on: [db]
            ports: ["8080:8080"]

        secrets:
          postgres_password:
            file: ./secrets/postgres_password.txt
        """,
        "h27_secret_path",
        False,
    ),
    t(
        "platform/puppet/hieradata/role/radius.eyaml",
        r"""
        ---
        profile::freeradius::clients:
          wlc-main-1:
            ipaddr: 10.20.0.11
            secret: >
                {IV}
          vpn-asa:
            ipaddr: 10.20.8.5
            secret: >
                {IV2}
        """,
        "h27_eyaml",
        False,
    ),
    t(
        "platform/web/portal-frontend/package-lock.json",
        r"""
        {
          "name": "portal-frontend",
          "version": "3.4.0",
          "lockfileVersion": 3,
          "requires": true,
          "packages": {
            "node_modules/axios": {
              "version": "1.7.7",
              "resolved": "https://registry.npmjs.org/axios/-/axios-1.7.7.tgz",
              "integrity": "{V}"
            },
            "node_modules/date-fns": {
              "version": "3.6.0",
              "resolved": "https://registry.npmjs.org/date-fns/-/date-fns-3.6.0.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
        "h27_sri",
        False,
    ),
    t(
        "platform/tools/go.sum",
        r"""
        github.com/go-ldap/ldap/v3 v3.4.8 {V}
        github.com/go-ldap/ldap/v3 v3.4.8/go.mod {V2}
        golang.org/x/crypto v0.27.0 {V3}
        """,
        "h27_gosum",
        False,
    ),
    t(
        "platform/web/portal-frontend/.npmrc",
        r"""
        @avu:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        engine-strict=true
        """,
        "h27_npmrc_ref",
        False,
    ),
    t(
        "platform/ssh/bastion/authorized_keys",
        r"""
        # bastion.avu.ac.uk -- managed by Ansible (role: bastion_users)
        {V}
        {V2}
        {V3}
        """,
        "h27_ssh_pub",
        False,
    ),
    t(
        "platform/ssh/host-fingerprints.md",
        r"""
        # SSH host key fingerprints

        Check these on first connection.

        | Host | ED25519 fingerprint |
        |---|---|
        | `login1.hpc.avu.ac.uk` | `{V}` |
        | `login2.hpc.avu.ac.uk` | `{V2}` |
        | `bastion.avu.ac.uk` | `{V3}` |
        """,
        "h27_ssh_fpr",
        False,
    ),
    t(
        "platform/release/KEYS.asc",
        r"""
        # Release signing key for AVU open-source packages (moodle-local_avu, ood-apps).
        {V}
        """,
        "h27_pgp_pub",
        False,
    ),
    t(
        "platform/.sops.yaml",
        r"""
        creation_rules:
          - path_regex: helm/.*/values-prod\.enc\.yaml$
            age: >-
              {V},
              {V2}
          - path_regex: ansible/group_vars/.*\.sops\.yml$
            age: {V3}
        """,
        "h27_age_pub",
        False,
    ),
    t(
        "web/research-portal/portal/settings/production.py",
        r"""
        from .base import *  # noqa: F403

        DEBUG = False
        ALLOWED_HOSTS = ["research.avu.ac.uk"]
        SECRET_KEY = {V}

        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "research_portal",
                "HOST": "pg-apps.avu.ac.uk",
                "USER": "research_portal",
            }
        }
        SESSION_COOKIE_SECURE = True
        CSRF_COOKIE_SECURE = True
        """,
        "h27_py_ref",
        False,
    ),
    t(
        "web/research-portal/portal/fixtures/staff_users.json",
        r"""
        [
          {
            "model": "auth.user",
            "pk": 1,
            "fields": {
              "username": "rdm-admin",
              "password": "{V}",
              "is_staff": true,
              "is_superuser": true
            }
          },
          {
            "model": "auth.user",
            "pk": 2,
            "fields": {
              "username": "rdm-curator",
              "password": "{V2}",
              "is_staff": true,
              "is_superuser": false
            }
          }
        ]
        """,
        "h27_pbkdf2",
        False,
    ),
    t(
        "platform/scripts/backup_mysql.bat",
        r"""
        @echo off
        REM Nightly dump of the card office MySQL database on card-app02.
        setlocal
        set BACKUP_DIR=D:\Backups\cardoffice
        set STAMP=%date:~-4%%date:~3,2%%date:~0,2%

        "C:\Program Files\MySQL\MySQL Server 8.0\bin\mysqldump.exe" -u backup -p{V} --single-transaction cardoffice > "%BACKUP_DIR%\cardoffice_%STAMP%.sql"
        if errorlevel 1 echo Backup failed >> "%BACKUP_DIR%\backup.log"
        endlocal
        """,
        "h27_bat_ref",
        False,
    ),
    t(
        "platform/db/mysql/users.sql",
        r"""
        -- Users on my-db01 (AVU Malaysia), exported with pt-show-grants.
        CREATE USER IF NOT EXISTS 'feeportal'@'10.%' IDENTIFIED WITH 'mysql_native_password' AS '{V}';
        GRANT SELECT, INSERT, UPDATE ON `fees`.* TO 'feeportal'@'10.%';
        CREATE USER IF NOT EXISTS 'reporting'@'10.%' IDENTIFIED WITH 'mysql_native_password' AS '{V2}';
        GRANT SELECT ON `fees`.* TO 'reporting'@'10.%';
        """,
        "h27_mysql_hash",
        False,
    ),
    t(
        "platform/db/postgres/roles.sql",
        r"""
        -- Roles on pg-apps, from pg_dumpall --roles-only (verifiers, not passwords).
        CREATE ROLE research_portal;
        ALTER ROLE research_portal WITH LOGIN NOSUPERUSER INHERIT PASSWORD '{V}';
        CREATE ROLE dspace;
        ALTER ROLE dspace WITH LOGIN NOSUPERUSER INHERIT PASSWORD '{V2}';
        """,
        "h27_scram",
        False,
    ),
    t(
        "platform/nginx/htpasswd/xdmod-status",
        r"""
        hpc-ops:{V}
        rc-manager:{V2}
        """,
        "h27_apr1",
        False,
    ),
    t(
        "platform/terraform/research-archive/secrets.tf",
        r"""
        data "aws_kms_secrets" "archive" {
          secret {
            name    = "globus_client_secret"
            payload = "{V}"
          }
        }

        resource "aws_ssm_parameter" "globus_client_secret" {
          name  = "/research-archive/globus/client-secret"
          type  = "SecureString"
          value = data.aws_kms_secrets.archive.plaintext["globus_client_secret"]
        }
        """,
        "h27_kms_blob",
        False,
    ),
    t(
        "docs/admin/moodle-dev-setup.md",
        r"""
        # Moodle development environment

        The docs site shows connection strings against the sample hosts, for example:

        ```
        postgres://moodle:{V}@db.example.com:5432/moodle
        ```

        Locally, `docker compose up` creates the database with whatever you put in `.env`.
        """,
        "h27_doc_url_pw",
        False,
    ),
    t(
        "platform/tls/wildcard-avu-ac-uk-2024.key",
        r"""
        {V}
        """,
        "h27_enc_pem",
        False,
    ),
    t(
        "sis/records-api/src/main/resources/jwt-verify.yml",
        r"""
        # Public keys the records API accepts for tokens from the API portal.
        records:
          jwt:
            issuer: https://api-portal.avu.ac.uk
            audience: records-api
            verification-keys:
              - kid: portal-2024
                pem: |
                  {IV}
        """,
        "h27_pubkey_pem",
        False,
    ),
    t(
        "platform/k8s/shared/ca-bundle-configmap.yaml",
        r"""
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: avu-ca-bundle
          namespace: kube-system
        binaryData:
          avu-root-ca.crt: {V}
        """,
        "h27_b64_cert",
        False,
    ),
    t(
        "sis/records-api/src/test/java/uk/ac/avu/records/auth/ApiClientServiceTest.java",
        r"""
        package uk.ac.avu.records.auth;

        import static org.assertj.core.api.Assertions.assertThat;

        import org.junit.jupiter.api.Test;

        class ApiClientServiceTest {

            // Not a real client secret: the service only ever stores its SHA-256.
            private static final String CLIENT_SECRET = "{V}";

            @Test
            void verifiesSecretAgainstStoredHash() {
                var service = new ApiClientService(new InMemoryApiClientRepository());
                service.register("timetabling", CLIENT_SECRET);
                assertThat(service.verify("timetabling", CLIENT_SECRET)).isTrue();
                assertThat(service.verify("timetabling", CLIENT_SECRET + "x")).isFalse();
            }
        }
        """,
        "h27_fake",
        False,
    ),
    t(
        "platform/.github/workflows/build-portal.yml",
        r"""
        name: build-portal
        on:
          push:
            branches: [main]
        jobs:
          image:
            runs-on: [self-hosted, linux, avu]
            steps:
              - uses: actions/checkout@v4
              - uses: docker/login-action@v3
                with:
                  registry: harbor.avu.ac.uk
                  username: robot$avu-ci
                  password: {V}
              - uses: docker/build-push-action@v6
                with:
                  push: true
                  tags: harbor.avu.ac.uk/sis/student-portal:${{ github.sha }}
        """,
        "h27_ci_ref",
        False,
    ),
]
