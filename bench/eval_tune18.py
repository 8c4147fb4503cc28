"""Blind part ``tune18``: a mid-size diagnostics and biotech lab group (Brightwater Clinical
Labs, BWCL: core clinical lab, a reference-lab courier network and a research division) and
its whole estate. Files are LIMS and interface-engine configs (Mirth Connect, HL7 v2 samples,
FHIR/SMART backend-services clients for Epic), lab instrument PCs (autologon .reg files,
Autounattend.xml, middleware INI files, batch and PowerShell share-mapping scripts), the
research HPC cluster (Slurm, slurmdbd, JupyterHub, SSSD/LDAP, Ansible, Apptainer, sbatch job
scripts), R and Python data science (notebooks, .Renviron, dbt, Snowflake connections.toml,
Databricks configs, Posit Connect, Hugging Face), the patient portal (Angular front end, .NET
API: appsettings, user secrets, DataProtection key rings, Web.config, NuGet and npm configs,
xUnit tests), microservices in Go, Java/Kotlin, Rust, PHP, Ruby and TypeScript, Azure
(Terraform, Bicep, ARM parameters, Functions, Service Bus, Storage, ACR) and on-prem VMware
(PowerCLI, govc, ESXi kickstart), Kubernetes, Helm and Docker Compose, CI (GitHub Actions,
Azure Pipelines, Jenkins), vendor integrations (Epic, Twilio SMS, DocuSign, Okta, Snowflake,
Databricks, SendGrid, Stripe, Datadog, PagerDuty, Sentry, JFrog, Slack and Teams webhooks),
SQL scripts, and the humans' files: runbooks and handover notes in Markdown and plain text,
HTML help pages, Slack and Teams chat exports. Written blind (without seeing the scanner, its
rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: references to Key Vault,
environment variables, CI secrets, Databricks secret scopes and tokenised deployment variables;
placeholders and empty values; values encrypted by a platform (DataProtection/EncryptedXml,
DPAPI SecureStrings, Jasypt, Jenkins, Rails credentials, SOPS, sealed secrets, Ansible Vault,
encrypted PKCS#8 keys); password hashes (ASP.NET Identity v3, bcrypt, sha512-crypt, apr1);
public material (certificates, CSRs, public keys and JWKS, SSH and PGP public keys, age
recipients); identifiers that share a secret's shape (Okta client ids, Twilio SIDs, Azure and
DocuSign GUIDs, certificate thumbprints, Snowflake account locators and key fingerprints,
Stripe publishable keys, browser Sentry DSNs, MRNs, accession numbers, NPIs); digests and lock
file hashes; UI text; documented example credentials (AWS, Azurite, jwt.io, Slack docs) and
credentials on documentation hosts; and visibly fake test tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import textwrap
import uuid
import zlib
from urllib.parse import quote

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
PWSYM = "!#%*-_@+.^"
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _wrap(body: str, width: int = 64) -> str:
    return "\n".join(body[i : i + width] for i in range(0, len(body), width))


class Tune18Values(evalset.Values):
    """Value generators of the tune18 part; every name starts with ``t18_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self._words18 = [
            "pipette",
            "cuvette",
            "reagent",
            "aliquot",
            "vortex",
            "plasma",
            "assay",
            "titrate",
            "serum",
            "helix",
            "beaker",
            "lysate",
            "harbor",
            "osprey",
            "granite",
            "bluefin",
        ]
        self._users18 = [
            "svc_lims",
            "mirth",
            "portal_api",
            "svc_hpc",
            "labtech",
            "sf_loader",
            "rptuser",
            "svc_instr",
        ]

    # -- helpers (not generators) -------------------------------------------------
    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n)).decode()

    def _b64u(self, n: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(n)).decode().rstrip("=")

    def _guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _der_pem(self, label: str, prefix: bytes, total: int, width: int = 64) -> str:
        raw = prefix + self.rng.randbytes(max(0, total - len(prefix)))
        body = base64.b64encode(raw).decode()
        return f"-----BEGIN {label}-----\n{_wrap(body, width)}\n-----END {label}-----"

    def _gh(self, prefix: str) -> str:
        body = self.s(30)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    # -- positives: passwords -----------------------------------------------------
    def t18_pw(self) -> str:
        rng = self.rng
        shape = rng.randrange(7)
        w = self.pick(self._words18)
        if shape == 0:
            return w.capitalize() + str(rng.randrange(10, 2026)) + rng.choice("!#%*@")
        if shape == 1:
            return self.s(rng.randrange(14, 22), ALNUM + PWSYM)
        if shape == 2:
            return (
                f"{w}-{self.pick(self._words18)}-{self.pick(self._words18)}-{rng.randrange(10, 99)}"
            )
        if shape == 3:
            return self.s(rng.randrange(20, 32))
        if shape == 4:
            leet = w.capitalize().replace("e", "3").replace("a", "@").replace("o", "0")
            return (
                leet
                + rng.choice("#!*")
                + self.pick(self._words18).capitalize()
                + self.s(2, string.digits)
            )
        if shape == 5:
            season = self.pick(["Spring", "Summer", "Autumn", "Winter"])
            return f"Bwcl{season}{rng.randrange(2019, 2026)}{rng.choice('!#@*')}"
        return (
            self.s(4, string.ascii_uppercase)
            + self.s(4, string.digits)
            + self.s(6, string.ascii_lowercase)
            + rng.choice(PWSYM)
        )

    def t18_url_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.pick(self._words18).capitalize() + self.s(4, string.digits)
        return self.s(self.rng.randrange(14, 26), ALNUM + "-_.")

    def t18_weak_pw(self) -> str:
        rng = self.rng
        if rng.randrange(2):
            return self.pick(
                [
                    "Welcome1!",
                    "Passw0rd!",
                    "P@ssw0rd",
                    "Brightwater1",
                    "Brightwater2024!",
                    "bwcl123",
                    "labtech1",
                    "Password123!",
                    "Lab@1234",
                    "Test1234!",
                    "Pipette#1",
                    "Bwcl!2023",
                    "letmein22",
                    "Qwerty123!",
                ]
            )
        return self.pick(self._words18).capitalize() + self.pick(
            ["1", "123", "2023", "2024!", "1!", "@99"]
        )

    def t18_b64_pw(self) -> str:
        return base64.b64encode(self.t18_pw().encode()).decode()

    def t18_basic_b64(self) -> str:
        user = self.pick(self._users18)
        return base64.b64encode(f"{user}:{self.t18_url_pw()}".encode()).decode()

    # -- positives: vendor tokens -------------------------------------------------
    def t18_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t18_okta_token(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def t18_okta_secret(self) -> str:
        return self.s(self.rng.choice([40, 64]), URLSAFE)

    def t18_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "", "", "-2", "-3"])

    def t18_azure_secret(self) -> str:
        return (
            self.s(3, ALNUM + "_~.") + self.s(1, string.digits) + "Q~" + self.s(34, ALNUM + "_~.-")
        )

    def t18_azure_storage_key(self) -> str:
        return self._b64(64)

    def t18_azure_storage_conn(self) -> str:
        acct = self.pick(["bwclresultsprod", "bwclhl7archive", "bwclfuncprod", "bwclresearchdl"])
        return (
            f"DefaultEndpointsProtocol=https;AccountName={acct};"
            f"AccountKey={self._b64(64)};EndpointSuffix=core.windows.net"
        )

    def t18_sas_url(self) -> str:
        acct = self.pick(["bwclresultsprod", "bwclhl7archive", "bwclresearchdl"])
        cont = self.pick(["instrument-exports", "hl7-archive", "cohort-drops"])
        y = self.rng.randrange(2025, 2028)
        return (
            f"https://{acct}.blob.core.windows.net/{cont}?sv=2022-11-02&ss=b&srt=co&sp=rwlac"
            f"&se={y}-12-31T23:59:59Z&st=2024-01-01T00:00:00Z&spr=https&sig={quote(self._b64(32), safe='')}"
        )

    def t18_sb_conn(self) -> str:
        ns = self.pick(["bwcl-hl7-prod", "bwcl-results-bus", "bwcl-orders-sb"])
        name = self.pick(["RootManageSharedAccessKey", "hl7-relay-send", "results-listen"])
        return (
            f"Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName={name};"
            f"SharedAccessKey={self._b64(32)}"
        )

    def t18_acr_pw(self) -> str:
        return self.s(42, ALNUM + "/+") + "+ACR" + self.s(6, ALNUM)

    def t18_ado_pat(self) -> str:
        return self.s(52, "abcdefghijklmnopqrstuvwxyz234567")

    def t18_github(self) -> str:
        return self._gh(self.pick(["ghp", "ghp", "gho"]))

    def t18_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59)}"

    def t18_npm(self) -> str:
        return self._gh("npm")

    def t18_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, string.digits)}-{self.s(13, string.digits)}-{self.s(24)}"

    def t18_slack_webhook(self) -> str:
        return f"https://hooks.slack.com/services/T{self.s(8, UPNUM)}/B{self.s(10, UPNUM)}/{self.s(24)}"

    def t18_teams_webhook(self) -> str:
        return (
            f"https://brightwaterlabs.webhook.office.com/webhookb2/{self._guid()}@{self._guid()}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{self._guid()}"
        )

    def t18_logicapp_url(self) -> str:
        region = self.pick(["eastus2", "westus", "centralus"])
        return (
            f"https://prod-{self.rng.randrange(10, 99)}.{region}.logic.azure.com:443/workflows/"
            f"{self.s(32, HEX)}/triggers/manual/paths/invoke?api-version=2016-06-01"
            f"&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.s(43, URLSAFE)}"
        )

    def t18_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t18_stripe_sk(self) -> str:
        return self.pick(["sk_live_51", "rk_live_51"]) + self.s(97)

    def t18_datadog_api(self) -> str:
        return self.s(32, HEX)

    def t18_datadog_app(self) -> str:
        return self.s(40, HEX)

    def t18_pd_key(self) -> str:
        return self.s(32, HEX)

    def t18_sentry_org(self) -> str:
        meta = {
            "iat": 1700000000 + self.rng.randrange(10**7),
            "url": "https://sentry.io",
            "region_url": "https://us.sentry.io",
            "org": "brightwater-clinical",
        }
        head = base64.b64encode(json.dumps(meta, separators=(",", ":")).encode()).decode()
        tail = base64.b64encode(self.s(32, HEX).encode()).decode().rstrip("=")
        return f"sntrys_{head}_{tail}"

    def t18_jfrog(self) -> str:
        return "AKCp8" + self.s(68)

    def t18_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def t18_aoai_key(self) -> str:
        return self.s(32, HEX)

    def t18_rsconnect_key(self) -> str:
        return self.s(32)

    def t18_aws_pair(self) -> str:
        key_id = "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {self.s(40, B64)}"

    def t18_aws_env_pair(self) -> str:
        key_id = "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return (
            f'export AWS_ACCESS_KEY_ID="{key_id}"\nexport AWS_SECRET_ACCESS_KEY="{self.s(40, B64)}"'
        )

    def t18_jwt_secret(self) -> str:
        return self.pick([self._b64(48), self.s(64), self.s(64, HEX)])

    def t18_hex64(self) -> str:
        return self.s(64, HEX)

    def t18_dp_key(self) -> str:
        return self._b64(64)

    def t18_bearer(self) -> str:
        return self.s(self.rng.choice([40, 43, 64]), URLSAFE)

    def t18_docusign_secret(self) -> str:
        return self._guid()

    # -- positives: private keys ----------------------------------------------------
    def t18_rsa_pem(self) -> str:
        prefix = bytes.fromhex("308204a40201000282010100")
        return self._der_pem("RSA PRIVATE KEY", prefix, 1192)

    def t18_pkcs8(self) -> str:
        prefix = bytes.fromhex("308204be020100300d06092a864886f70d0101010500048204a8")
        return self._der_pem("PRIVATE KEY", prefix, 1218)

    def t18_ec_pem(self) -> str:
        raw = (
            bytes.fromhex("30770201010420")
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a144034200")
            + b"\x04"
            + self.rng.randbytes(64)
        )
        body = base64.b64encode(raw).decode()
        return f"-----BEGIN EC PRIVATE KEY-----\n{_wrap(body)}\n-----END EC PRIVATE KEY-----"

    def t18_openssh(self) -> str:
        raw = (
            b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00"
            b"\x00\x00\x00\x01\x00\x00\x00\x33\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
            + self.rng.randbytes(32)
            + self.rng.randbytes(280)
        )
        body = base64.b64encode(raw).decode()
        return (
            "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            + _wrap(body, 70)
            + "\n-----END OPENSSH PRIVATE KEY-----"
        )

    def t18_pem_escaped(self) -> str:
        return self.t18_rsa_pem().replace("\n", "\\n") + "\\n"

    def t18_jwk_private(self) -> str:
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.s(16, HEX),
            "use": "sig",
            "x": self._b64u(32),
            "y": self._b64u(32),
            "d": self._b64u(32),
        }
        return json.dumps(jwk)

    # -- negatives: references and placeholders -------------------------------------
    def t18_placeholder(self) -> str:
        return self.pick(
            [
                "<password>",
                "<YOUR_PASSWORD>",
                "changeme",
                "CHANGEME",
                "your-password-here",
                "xxxxxxxxxxxx",
                "********",
                "REPLACE_ME",
                "",
                "TBD",
                "<set-from-keyvault>",
                "__PASSWORD__",
                "<ask-#it-helpdesk>",
                "PUT_REAL_VALUE_HERE",
            ]
        )

    def t18_replace_token(self) -> str:
        name = self.pick(
            ["PortalDbPassword", "TwilioAuthToken", "OktaClientSecret", "JwtSigningKey"]
        )
        return self.pick([f"#{{{name}}}#", f"__{name}__", f"$({name})", f"#{{Octopus.{name}}}", ""])

    def t18_env_py(self) -> str:
        return self.pick(
            [
                'os.environ["SNOWFLAKE_PASSWORD"]',
                'os.getenv("LIMS_DB_PASSWORD", "")',
                'os.environ.get("OKTA_API_TOKEN")',
                "settings.TWILIO_AUTH_TOKEN",
                'keyring.get_password("bwcl-lims", "svc_lims")',
                'getpass.getpass("Snowflake password: ")',
            ]
        )

    def t18_ref_cs(self) -> str:
        return self.pick(
            [
                'builder.Configuration["Twilio:AuthToken"]',
                'Environment.GetEnvironmentVariable("PORTAL_DB_PASSWORD")',
                'configuration.GetConnectionString("PortalDb")',
                "options.Value.ClientSecret",
                '(await secretClient.GetSecretAsync("okta-client-secret")).Value.Value',
            ]
        )

    def t18_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.TWILIO_AUTH_TOKEN",
                "process.env['SENDGRID_API_KEY'] ?? ''",
                "config.get<string>('twilio.authToken')",
                "await getSecret('notify-twilio-token')",
                "requireEnv('TWILIO_AUTH_TOKEN')",
            ]
        )

    def t18_ref_gh(self) -> str:
        return self.pick(
            [
                "${{ secrets.AZURE_CLIENT_SECRET }}",
                "${{ secrets.SNOWFLAKE_PASSWORD }}",
                "${{ secrets.MSSQL_SA_PASSWORD }}",
                "${{ secrets.ADO_FEED_PAT }}",
                "${{ steps.kv.outputs.sql-admin-password }}",
                "${{ env.CI_DB_PASSWORD }}",
            ]
        )

    def t18_ref_ado(self) -> str:
        return self.pick(
            [
                "$(MirthAdminPassword)",
                "$(ado-feed-pat)",
                "$(PortalSmokePassword)",
                "$(System.AccessToken)",
                "${{ variables.smokePassword }}",
            ]
        )

    def t18_ref_tf(self) -> str:
        return self.pick(
            [
                "var.sql_admin_password",
                "random_password.sql_admin.result",
                "azurerm_key_vault_secret.sql_admin.value",
                "data.azurerm_key_vault_secret.okta_token.value",
                "sensitive(var.snowflake_password)",
                "azurerm_storage_account.results.primary_access_key",
            ]
        )

    def t18_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:VCENTER_PASSWORD",
                "(Get-Secret -Name vcenter-svc -AsPlainText)",
                "(Get-AzKeyVaultSecret -VaultName kv-bwcl-ops -Name vcenter-svc -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Get-StoredCredential -Target 'BWCL-Results').Password",
            ]
        )

    def t18_ref_sh(self) -> str:
        return self.pick(
            [
                '"$(cat "$CREDENTIALS_DIRECTORY/secret")"',
                '"$(az keyvault secret show --vault-name kv-bwcl-ops --name acr-push --query value -o tsv)"',
                '"$(vault kv get -field=password secret/hpc/slurmdb)"',
                '"${ACR_PASSWORD:?missing}"',
                '"$(cat /run/secrets/db_password)"',
                '"$(pass show bwcl/vcenter/svc_govc)"',
            ]
        )

    def t18_ref_r(self) -> str:
        return self.pick(
            [
                'Sys.getenv("SNOWFLAKE_PWD")',
                'keyring::key_get("snowflake", "svc_research")',
                'rstudioapi::askForPassword("Snowflake password")',
                'config::get("snowflake")$password',
            ]
        )

    def t18_ref_java(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${PAYMENTS_DB_PASSWORD:}",
                "${vault.payments.db-password}",
                "${sm://payments-db-password}",
            ]
        )

    def t18_ref_rust(self) -> str:
        return self.pick(
            [
                'std::env::var("AMQP_PASSWORD")?',
                'env::var("ROUTER_DB_PASSWORD").expect("ROUTER_DB_PASSWORD not set")',
                "settings.amqp.password.clone()",
                'dotenvy::var("AMQP_PASSWORD")?',
            ]
        )

    def t18_ref_rb(self) -> str:
        return self.pick(
            [
                "ENV.fetch('DOCUSIGN_SECRET_KEY')",
                "Rails.application.credentials.dig(:docusign, :secret_key)",
                "ENV['DOCUSIGN_PRIVATE_KEY']",
                "Rails.application.credentials.docusign[:rsa_key]",
            ]
        )

    def t18_jinja_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_slurmdb_password }}",
                "{{ lookup('env', 'SLURMDB_PASS') }}",
                "{{ env_var('DBT_SF_PASSWORD') }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/hpc:slurmdb') }}",
            ]
        )

    def t18_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.database.password | b64enc | quote }}",
                '{{ required "db password required" .Values.database.password }}',
                "{{ .Values.mirth.adminPassword | quote }}",
                '{{ include "mirth.secretName" . }}',
            ]
        )

    def t18_compose_ref(self) -> str:
        return self.pick(
            [
                "${MSSQL_SA_PASSWORD:?set MSSQL_SA_PASSWORD}",
                "${RABBITMQ_PASS}",
                "${LIMS_DB_PASSWORD:-}",
                "${SA_PASSWORD}",
            ]
        )

    def t18_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-bwcl-portal.vault.azure.net/secrets/twilio-token/)",
                "@Microsoft.KeyVault(VaultName=kv-bwcl-portal;SecretName=sql-password)",
                "akv://kv-bwcl-ops/okta-api-token",
                "https://kv-bwcl-portal.vault.azure.net/secrets/docusign-rsa",
            ]
        )

    def t18_dbx_ref(self) -> str:
        return self.pick(
            [
                "dbutils.secrets.get(scope='bwcl-research', key='snowflake-password')",
                "dbutils.secrets.get('lims-etl', 'sf-svc-pass')",
                "dbutils.secrets.get(scope='lims-etl', key='sas-token')",
            ]
        )

    def t18_dbx_conf_ref(self) -> str:
        return self.pick(
            [
                "{{secrets/bwcl-research/snowflake-password}}",
                "{{secrets/lims-etl/sas-token}}",
                "{{secrets/lims-etl/sf-svc-pass}}",
            ]
        )

    def t18_mirth_ref(self) -> str:
        return self.pick(
            ["${limsResultsPassword}", "${cfg_lims_ro_password}", "${lims.db.password}", ""]
        )

    def t18_sqlcmd_var(self) -> str:
        return self.pick(["$(LimsAppPassword)", "$(ReportingPassword)", "$(SvcMirthPwd)"])

    def t18_op_ref(self) -> str:
        return self.pick(
            [
                "op://Lab-Ops/vCenter administrator/password",
                "op://Research-HPC/slurmdbd/password",
                "1Password > Lab IT > Mirth admin",
                "Key Vault kv-bwcl-ops / mirth-admin",
                "CyberArk safe LAB-INSTR, object cobas-pc-local-admin",
            ]
        )

    def t18_secret_name(self) -> str:
        return self.pick(
            [
                "lims-api-db",
                "portal-sql-password",
                "mirth-admin",
                "okta-api-token",
                "twilio-auth-token",
                "snowflake-svc-loader",
                "regcred",
            ]
        )

    def t18_ref_win(self) -> str:
        return self.pick(["%ADO_FEED_PAT%", "%NUGET_PASSWORD%", "%SVC_INSTR_PWD%"])

    def t18_npmrc_ref(self) -> str:
        return self.pick(["${NPM_TOKEN}", "${NODE_AUTH_TOKEN}", "${BWCL_NPM_TOKEN}"])

    def t18_grafana_ref(self) -> str:
        return self.pick(
            [
                "$__file{/etc/grafana/secrets/lims_ro_password}",
                "${GF_LIMS_RO_PASSWORD}",
                "$__env{LIMS_RO_PASSWORD}",
            ]
        )

    def t18_dd_ref(self) -> str:
        return self.pick(
            ["ENC[sqlserver_password]", "ENC[lims_ro_pw]", "ENC[k8s_secret@datadog/sql/password]"]
        )

    def t18_ref_bicep(self) -> str:
        return self.pick(
            [
                "storage.listKeys().keys[0].value",
                "kv.getSecret('sql-admin-password')",
                "sqlAdminPassword",
                "listKeys(resourceId('Microsoft.ServiceBus/namespaces/authorizationRules', sbName, 'send'), '2022-10-01-preview').primaryKey",
            ]
        )

    def t18_postman_ref(self) -> str:
        return self.pick(["{{access_token}}", "{{okta_client_secret}}", "{{portal_api_key}}"])

    def t18_go_tmpl_ref(self) -> str:
        return self.pick(
            [
                "{{ .RedisPassword }}",
                '{{ env "REDIS_PASSWORD" }}',
                '{{ with secret "kv/redis" }}{{ .Data.password }}{{ end }}',
            ]
        )

    def t18_key_path(self) -> str:
        return self.pick(
            [
                "/var/spool/slurm/statesave/jwt_hs256.key",
                "/etc/munge/munge.key",
                "/etc/slurm/jwt.key",
                "~/.snowflake/rsa_key.p8",
            ]
        )

    # -- negatives: fakes, examples, text -----------------------------------------
    def t18_fake_token(self) -> str:
        return self.pick(
            [
                "fake-twilio-auth-token",
                "test-auth-token",
                "dummy-token",
                "not-a-real-secret",
                "test-secret-do-not-use",
                "0123456789abcdef0123456789abcdef",
                "00000000000000000000000000000000",
                "token-for-unit-tests",
            ]
        )

    def t18_fake_hf(self) -> str:
        return self.pick(
            [
                "hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "hf_abc123",
                "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
                "hf_dummy",
                "hf_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            ]
        )

    def t18_fake_okta(self) -> str:
        return self.pick(
            [
                "00XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
                "00abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN",
                "00-your-okta-api-token",
                "00000000000000000000000000000000000000000",
            ]
        )

    def t18_fake_env_line(self) -> str:
        if not getattr(self, "_fake_env_deck", None):
            self._fake_env_deck = self._fake_env_pairs()
            self.rng.shuffle(self._fake_env_deck)
        name, value = self._fake_env_deck.pop()
        return f'monkeypatch.setenv("{name}", "{value}")'

    def _fake_env_pairs(self) -> list[tuple[str, str]]:
        return list(
            [
                ("GITHUB_TOKEN", "ghp_abc123"),
                ("GITHUB_TOKEN", "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
                ("DATABRICKS_TOKEN", "dapi" + "0" * 32),
                ("DATABRICKS_TOKEN", "dapiXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
                ("SLACK_BOT_TOKEN", "xoxb-not-a-real-token"),
                ("SENDGRID_API_KEY", "SG.fake.key"),
                ("TWILIO_AUTH_TOKEN", "test-twilio-token"),
                ("SNOWFLAKE_PASSWORD", "not-a-real-password"),
                ("OKTA_API_TOKEN", "00-fake-okta-token"),
            ]
        )

    def t18_fake_pw(self) -> str:
        return self.pick(
            ["fake-password", "not-a-real-password", "test", "dummy", "pw-for-unit-tests-only", "x"]
        )

    def t18_doc_placeholder(self) -> str:
        return self.pick(
            [
                "your_auth_token",
                "<TWILIO_AUTH_TOKEN>",
                "[AuthToken]",
                "YOUR_ACCESS_TOKEN",
                "<token>",
                "...",
            ]
        )

    def t18_doc_webhook(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/<team>/<channel>/<token>",
                "https://example.webhook.office.com/webhookb2/<guid>/IncomingWebhook/<id>/<guid>",
                "https://prod-00.westus.logic.azure.com:443/workflows/<workflow-id>/triggers/manual/paths/invoke?...&sig=<signature>",
            ]
        )

    def t18_doc_url(self) -> str:
        user = self.pick(["lims", "user", "admin", "guest", "app"])
        pw = self.pick(["password", "secret", "S3cret!", "hunter2", "pass123", "p4ssw0rd"])
        host = self.pick(
            [
                "db.example.com",
                "lims.example.org",
                "mq.example.test",
                "sql.example",
                "results.invalid",
            ]
        )
        scheme = self.pick(["postgresql", "mysql", "amqp", "mongodb", "redis"])
        return f"{scheme}://{user}:{pw}@{host}/lims"

    def t18_aws_example(self) -> str:
        return self.pick(
            [
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\naws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def t18_dev_storage(self) -> str:
        return self.pick(
            [
                "UseDevelopmentStorage=true",
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
            ]
        )

    def t18_jwt_example(self) -> str:
        return self.pick(
            [
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                "eyJhbGciOi...<snip>...",
                "<access_token>",
            ]
        )

    def t18_doc_basic(self) -> str:
        return self.pick(
            [
                "dXNlcm5hbWU6cGFzc3dvcmQ=",  # username:password
                base64.b64encode(b"<client_id>:<client_secret>").decode(),
                "<base64(user:password)>",
                base64.b64encode(b"USER:PASSWORD").decode(),
            ]
        )

    def t18_ui_text(self) -> str:
        return self.pick(
            [
                "Enter your password",
                "Password must be at least 12 characters",
                "Your verification code has expired",
                "Incorrect username or password",
                "Contraseña",
                "Ingrese su contraseña",
                "La contraseña no coincide",
                "Olvidé mi contraseña",
                "Mật khẩu không đúng",
                "Show password",
                "Confirm new password",
            ]
        )

    def t18_redacted(self) -> str:
        return self.pick(["********", "[REDACTED]", "<redacted by DLP>", "•••••••••", "[hidden]"])

    def t18_pw_policy(self) -> str:
        return self.pick(
            [
                r"^(?=.*[A-Z])(?=.*[a-z])(?=.*\d)(?=.*[^A-Za-z0-9]).{12,128}$",
                "minLength: 12",
                "at least 14 characters, 1 symbol",
                r"[A-Za-z0-9!@#$%^&*]{12,}",
            ]
        )

    # -- negatives: identifiers ----------------------------------------------------
    def t18_guid(self) -> str:
        return self._guid()

    def t18_okta_client_id(self) -> str:
        return "0oa" + self.s(17)

    def t18_twilio_sid(self) -> str:
        return self.pick(["AC", "MG", "PN"]) + self.s(32, HEX)

    def t18_thumbprint(self) -> str:
        return self.s(40, HEXU)

    def t18_colon_fpr(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(20))

    def t18_stripe_pk(self) -> str:
        return "pk_live_51" + self.s(97)

    def t18_sentry_dsn(self) -> str:
        return f"https://{self.s(32, HEX)}@o{self.rng.randrange(10**5, 10**7)}.ingest.us.sentry.io/{self.rng.randrange(10**6, 10**7)}"

    def t18_sf_account(self) -> str:
        return self.pick(
            [
                f"{self.s(2, string.ascii_lowercase)}{self.s(5, string.digits)}.east-us-2.azure",
                f"bwcl-{self.pick(['research', 'analytics', 'prod'])}",
                f"{self.s(7, string.ascii_uppercase)}-BWCL_{self.pick(['RESEARCH', 'PROD'])}",
            ]
        )

    def t18_sf_fp(self) -> str:
        return "SHA256:" + self._b64(32)

    def t18_mrn(self) -> str:
        return self.pick(
            [
                f"MRN{self.s(8, string.digits)}",
                f"E{self.s(7, string.digits)}",
                f"ACC-{self.rng.randrange(22, 26)}-{self.s(6, string.digits)}",
                f"S{self.rng.randrange(22, 26)}-{self.s(6, string.digits)}",
                f"BW{self.s(10, string.digits)}",
            ]
        )

    def t18_hl7_ctrl(self) -> str:
        return self.pick(
            [self.s(20, string.digits), f"BWCL{self.s(12, string.digits)}", self.s(16, UPNUM)]
        )

    def t18_npi(self) -> str:
        base = "1" + self.s(8, string.digits)
        digits = [int(c) for c in "80840" + base]
        total = 0
        for i, d in enumerate(reversed(digits)):
            if i % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return base + str((10 - total % 10) % 10)

    def t18_asset_id(self) -> str:
        return self.pick(
            [
                f"BWCL-IPC-{self.s(4, string.digits)}",
                f"SN-{self.s(8, UPNUM)}",
                f"{self.s(2, string.ascii_uppercase)}{self.s(8, string.digits)}",
            ]
        )

    def t18_digest(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t18_md5(self) -> str:
        return hashlib.md5(self.rng.randbytes(24)).hexdigest()

    def t18_git_sha(self) -> str:
        return self.s(40, HEX)

    def t18_tf_hash(self) -> str:
        return self.pick(["h1:" + self._b64(32), "zh:" + self.s(64, HEX)])

    def t18_npm_integrity(self) -> str:
        return "sha512-" + self._b64(64)

    def t18_nuget_hash(self) -> str:
        return self._b64(64)

    def t18_sri(self) -> str:
        return "sha384-" + self._b64(48)

    def t18_gosum(self) -> str:
        return "h1:" + self._b64(32)

    def t18_sig_b64(self) -> str:
        return self._b64(20)

    def t18_png_b64(self) -> str:
        return base64.b64encode(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + self.rng.randbytes(180)
        ).decode()

    # -- negatives: hashes and encrypted values --------------------------------------
    def t18_bcrypt(self) -> str:
        return "$2a$11$" + self.s(53, ALNUM + "./")

    def t18_aspnet_hash(self) -> str:
        if self.rng.randrange(2):
            head = bytes.fromhex("01" + "00000001" + "00002710" + "00000010")
        else:
            head = bytes.fromhex("01" + "00000002" + "000186a0" + "00000010")
        return base64.b64encode(head + self.rng.randbytes(48)).decode()

    def t18_sha512crypt(self) -> str:
        return f"$6${self.s(16, ALNUM + './')}${self.s(86, ALNUM + './')}"

    def t18_apr1(self) -> str:
        return f"$apr1${self.s(8, ALNUM + './')}${self.s(22, ALNUM + './')}"

    def t18_ps_securestring(self) -> str:
        return "01000000d08c9ddf0115d1118c7a00c04fc297eb01000000" + self.s(
            self.rng.choice([280, 312, 344]), HEX
        )

    def t18_b64_cipher(self) -> str:
        return self._b64(self.rng.choice([128, 160, 256]))

    def t18_jasypt(self) -> str:
        return f"ENC({self._b64(self.rng.choice([32, 48]))})"

    def t18_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self._b64(36) + "}"

    def t18_rails_enc(self) -> str:
        return f"{self._b64(120)}--{self._b64(12)}--{self._b64(16)}"

    def t18_sops(self) -> str:
        return (
            f"ENC[AES256_GCM,data:{self._b64(self.rng.randrange(12, 36))},"
            f"iv:{self._b64(32)},tag:{self._b64(16)},type:str]"
        )

    def t18_ansible_vault(self) -> str:
        body = self.s(80 * 7, HEX)
        return "$ANSIBLE_VAULT;1.1;AES256\n" + _wrap(body, 80)

    def t18_sealed(self) -> str:
        return "AgB" + self._b64(390)

    def t18_enc_key(self) -> str:
        prefix = bytes.fromhex(
            "3082051c304e06092a864886f70d01050d3041302906092a864886f70d01050c301c0408"
        )
        return self._der_pem("ENCRYPTED PRIVATE KEY", prefix, 1312)

    # -- negatives: public material -----------------------------------------------
    def t18_cert(self) -> str:
        prefix = bytes.fromhex("3082035a30820242a003020102021400")
        return self._der_pem("CERTIFICATE", prefix, 862)

    def t18_csr(self) -> str:
        prefix = bytes.fromhex("308202a43082018c020100")
        return self._der_pem("CERTIFICATE REQUEST", prefix, 680)

    def t18_pubkey(self) -> str:
        prefix = bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100")
        raw = prefix + self.rng.randbytes(256) + bytes.fromhex("0203010001")
        return f"-----BEGIN PUBLIC KEY-----\n{_wrap(base64.b64encode(raw).decode())}\n-----END PUBLIC KEY-----"

    def t18_rsa_pub_body(self) -> str:
        prefix = bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100")
        return base64.b64encode(
            prefix + self.rng.randbytes(256) + bytes.fromhex("0203010001")
        ).decode()

    def t18_rsa_n(self) -> str:
        return self._b64u(256)

    def t18_ssh_pub(self) -> str:
        who = self.pick(["rtan", "mokafor", "jlindqvist", "hpc-admin", "pchen", "deploy"])
        if self.rng.randrange(2):
            body = base64.b64encode(
                b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
            ).decode()
            return f"ssh-ed25519 {body} {who}@bwcl.org"
        body = base64.b64encode(
            b"\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x03\x01\x00\x01\x00\x00\x01\x01\x00"
            + self.rng.randbytes(256)
        ).decode()
        return f"ssh-rsa {body} {who}@bwcl.org"

    def t18_ssh_hostkey(self) -> str:
        host = self.pick(
            [
                "sftp.questdiagnostics.com",
                "mft.labcorp.com",
                "sftp.bwcl-partner.net",
                "hpc-login01.bwcl.org",
            ]
        )
        body = base64.b64encode(
            b"\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41\x04"
            + self.rng.randbytes(64)
        ).decode()
        return f"{host} ecdsa-sha2-nistp256 {body}"

    def t18_pgp_public(self) -> str:
        raw = b"\x99\x02\x0d\x04" + (1600000000 + self.rng.randrange(10**8)).to_bytes(4, "big")
        body = _wrap(base64.b64encode(raw + b"\x01\x10\x00" + self.rng.randbytes(425)).decode())
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + body
            + f"\n={self._b64(3)}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def t18_age_public(self) -> str:
        return "age1" + self.s(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l")

    def t18_jwks_public(self) -> str:
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.s(16, HEX),
            "use": "sig",
            "x": self._b64u(32),
            "y": self._b64u(32),
        }
        return json.dumps(jwk)


VALUES = Tune18Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = []

# ------------------------------------------------------------------ patient portal (.NET + Angular)
TEMPLATES += [
    _t(
        "portal/src/Brightwater.Portal.Api/appsettings.Production.json",
        "t18_pw",
        True,
        r"""
        {
          "Logging": {
            "LogLevel": { "Default": "Warning", "Microsoft.AspNetCore": "Warning" }
          },
          "AllowedHosts": "portal.brightwaterlabs.com",
          "ConnectionStrings": {
            "PortalDb": "Server=tcp:bwcl-portal-sql.database.windows.net,1433;Initial Catalog=portal;User ID=portal_api;Password={V};Encrypt=True;TrustServerCertificate=False;Connection Timeout=30;",
            "LimsReadOnly": "Server=bwcl-lims-sql01.corp.bwcl.org;Database=LIMS_PROD;User Id=portal_ro;Password={V2};MultipleActiveResultSets=true"
          },
          "Okta": {
            "OktaDomain": "https://brightwater.okta.com",
            "AuthorizationServerId": "aus4x2portal"
          },
          "Results": { "ReleaseDelayHours": 72 }
        }
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Api/appsettings.json",
        "t18_replace_token",
        False,
        r"""
        {
          "ConnectionStrings": {
            "PortalDb": "Server=tcp:bwcl-portal-sql.database.windows.net,1433;Initial Catalog=portal;User ID=portal_api;Password={V};Encrypt=True;"
          },
          "Twilio": {
            "AccountSid": "#{TwilioAccountSid}#",
            "AuthToken": "{V2}",
            "MessagingServiceSid": "#{TwilioMessagingServiceSid}#"
          },
          "Okta": {
            "ClientId": "#{OktaClientId}#",
            "ClientSecret": "{V3}"
          },
          "Jwt": { "Issuer": "bwcl-portal", "SigningKey": "{V4}" }
        }
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Api/appsettings.Development.json",
        "t18_okta_secret",
        True,
        r"""
        {
          "Logging": { "LogLevel": { "Default": "Debug" } },
          "Okta": {
            "OktaDomain": "https://brightwater-preview.oktapreview.com",
            "ClientId": "0oa9dev4portal7local",
            "ClientSecret": "{V}",
            "CallbackPath": "/authorization-code/callback"
          },
          "Features": { "ShowDebugBanner": true }
        }
        """,
    ),
    _t(
        "docs/dev/user-secrets-snapshot/secrets.json",
        "t18_jwt_secret",
        True,
        r"""
        {
          "Jwt:SigningKey": "{V}",
          "Portal:ResultLinkHmacKey": "{V2}",
          "Okta:OktaDomain": "https://brightwater-preview.oktapreview.com"
        }
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Api/Program.cs",
        "t18_ref_cs",
        False,
        r"""
        using Brightwater.Portal.Api.Notifications;
        using Azure.Identity;
        using Azure.Security.KeyVault.Secrets;

        var builder = WebApplication.CreateBuilder(args);
        builder.Configuration.AddAzureKeyVault(
            new Uri("https://kv-bwcl-portal.vault.azure.net/"), new DefaultAzureCredential());

        var secretClient = new SecretClient(
            new Uri("https://kv-bwcl-portal.vault.azure.net/"), new DefaultAzureCredential());

        builder.Services.Configure<TwilioOptions>(o =>
        {
            o.AccountSid = builder.Configuration["Twilio:AccountSid"]!;
            o.AuthToken = {V};
        });

        builder.Services.AddDbContext<PortalDbContext>(o =>
            o.UseSqlServer({V2}));

        var okta = new OktaOptions { ClientSecret = {V3} };

        var app = builder.Build();
        app.MapControllers();
        app.Run();
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Api/Notifications/TwilioSmsSender.cs",
        "t18_twilio_token",
        True,
        r"""
        using Twilio;
        using Twilio.Rest.Api.V2010.Account;

        namespace Brightwater.Portal.Api.Notifications;

        // TEMP: hard-coded while Key Vault access for the staging slot is sorted out (PORTAL-412)
        public sealed class TwilioSmsSender : ISmsSender
        {
            private const string AccountSid = "AC5e0d3f7b2a9c41d8e6f0b1a2c3d4e5f6";
            private const string AuthToken = "{V}";
            private const string MessagingServiceSid = "MG0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";

            public TwilioSmsSender() => TwilioClient.Init(AccountSid, AuthToken);

            public async Task SendResultReadyAsync(string phoneE164, CancellationToken ct)
            {
                await MessageResource.CreateAsync(
                    to: new Twilio.Types.PhoneNumber(phoneE164),
                    messagingServiceSid: MessagingServiceSid,
                    body: "Brightwater Clinical Labs: your results are ready. Sign in to the patient portal to view them.");
            }
        }
        """,
    ),
    _t(
        "portal/tests/Brightwater.Portal.Api.Tests/Notifications/TwilioSmsSenderTests.cs",
        "t18_fake_token",
        False,
        r"""
        using Xunit;
        using Moq;

        public class TwilioSmsSenderTests
        {
            private static TwilioOptions Options() => new()
            {
                AccountSid = "ACtest",
                AuthToken = "{V}",
                MessagingServiceSid = "MGtest",
            };

            [Fact]
            public async Task Does_not_send_when_phone_missing()
            {
                var client = new Mock<ITwilioRestClient>();
                var sender = new TwilioSmsSender(Options(), client.Object);
                await sender.SendResultReadyAsync("", default);
                client.VerifyNoOtherCalls();
            }

            [Fact]
            public void Options_validate_token_is_present()
            {
                var o = Options() with { AuthToken = "{V2}" };
                Assert.True(OptionsValidator.IsValid(o));
            }
        }
        """,
    ),
    _t(
        "portal/tests/Brightwater.Portal.Api.Tests/Infrastructure/PortalApiFactory.cs",
        "t18_weak_pw",
        True,
        r"""
        using Microsoft.AspNetCore.Mvc.Testing;
        using Testcontainers.MsSql;

        public sealed class PortalApiFactory : WebApplicationFactory<Program>, IAsyncLifetime
        {
            private readonly MsSqlContainer _sql = new MsSqlBuilder()
                .WithImage("mcr.microsoft.com/mssql/server:2022-CU12-ubuntu-22.04")
                .WithPassword("{V}")
                .Build();

            // seeded patient account used by the login tests
            public const string SeedPatientEmail = "test.patient@bwcl-qa.org";
            public const string SeedPatientPassword = "{V2}";

            public Task InitializeAsync() => _sql.StartAsync();
            public new Task DisposeAsync() => _sql.DisposeAsync().AsTask();
        }
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Data/Migrations/20240311_SeedStaffUsers.cs",
        "t18_aspnet_hash",
        False,
        r"""
        using Microsoft.EntityFrameworkCore.Migrations;

        public partial class SeedStaffUsers : Migration
        {
            protected override void Up(MigrationBuilder mb)
            {
                mb.InsertData(
                    table: "AspNetUsers",
                    columns: new[] { "Id", "UserName", "NormalizedUserName", "Email", "PasswordHash", "SecurityStamp" },
                    values: new object[,]
                    {
                        { "b7f1c7c4-1f4e-4c65-9f2a-1d8a0b2f7e01", "portal.admin", "PORTAL.ADMIN", "portal.admin@brightwaterlabs.com", "{V}", "Q3V7ZK5XN2M4P6R8T0W2Y4A6C8E0G2I4" },
                        { "0c9e8d7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b", "support.lead", "SUPPORT.LEAD", "support.lead@brightwaterlabs.com", "{V2}", "H5J7L9N1P3R5T7V9X1Z3B5D7F9H1J3L5" },
                    });
            }
        }
        """,
    ),
    _t(
        "portal/web/proxy.conf.json",
        "t18_basic_b64",
        True,
        r"""
        {
          "/api": {
            "target": "https://portal-api-staging.brightwaterlabs.com",
            "secure": true,
            "changeOrigin": true,
            "logLevel": "debug",
            "headers": {
              "Authorization": "Basic {V}"
            }
          },
          "/lims-preview": {
            "target": "https://lims-uat.corp.bwcl.org",
            "secure": false,
            "headers": { "Authorization": "Basic {V2}" }
          }
        }
        """,
    ),
    _t(
        "portal/web/src/environments/environment.prod.ts",
        "t18_okta_client_id",
        False,
        r"""
        export const environment = {
          production: true,
          apiBaseUrl: 'https://portal.brightwaterlabs.com/api',
          okta: {
            issuer: 'https://brightwater.okta.com/oauth2/aus4x2portal',
            clientId: '{V}',
            redirectUri: 'https://portal.brightwaterlabs.com/login/callback',
            scopes: ['openid', 'profile', 'email', 'offline_access'],
            pkce: true,
          },
          staffSso: {
            clientId: '{V2}',
          },
        };
        """,
    ),
    _t(
        "portal/web/src/environments/environment.billing.ts",
        "t18_stripe_pk",
        False,
        r"""
        // Publishable keys only. Secret keys live in the billing service (Key Vault), never in the SPA.
        export const billing = {
          stripePublishableKey: '{V}',
          stripeAccountLabel: 'Brightwater Clinical Labs - Patient Billing',
          // second Stripe account for the research participant stipends
          stipendPublishableKey: '{V2}',
        };
        """,
    ),
    _t(
        "portal/web/src/environments/environment.ts",
        "t18_sentry_dsn",
        False,
        r"""
        // This file is replaced during build by environment.prod.ts
        export const environment = {
          production: false,
          apiBaseUrl: 'http://localhost:5080/api',
          sentry: {
            dsn: '{V}',
            tracesSampleRate: 0.2,
            environment: 'local',
          },
          featureFlags: { newResultsTimeline: true },
        };
        """,
    ),
    _t(
        "portal/web/src/app/auth/login/login.component.html",
        "t18_ui_text",
        False,
        r"""
        <form [formGroup]="form" (ngSubmit)="submit()" class="bw-login">
          <h1>{{ 'login.title' | translate }}</h1>
          <label for="email">Email</label>
          <input id="email" type="email" formControlName="email" autocomplete="username" />

          <label for="password">{V}</label>
          <input id="password" [type]="showPassword ? 'text' : 'password'" formControlName="password"
                 placeholder="{V2}" autocomplete="current-password" />
          <button type="button" class="link" (click)="showPassword = !showPassword">{V3}</button>

          <p class="error" *ngIf="error">{{ error }}</p>
          <button type="submit" [disabled]="form.invalid">Sign in</button>
          <a routerLink="/forgot-password">Forgot password?</a>
        </form>
        """,
    ),
    _t(
        "portal/web/src/assets/i18n/es.json",
        "t18_ui_text",
        False,
        r"""
        {
          "login.title": "Portal del paciente",
          "login.password": "{V}",
          "login.passwordHint": "{V2}",
          "login.error": "{V3}",
          "results.ready": "Sus resultados están listos",
          "results.pending": "Resultados pendientes"
        }
        """,
    ),
    _t(
        "portal/web/src/index.html",
        "t18_sri",
        False,
        r"""
        <!doctype html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <title>Brightwater Patient Portal</title>
          <base href="/">
          <meta name="viewport" content="width=device-width, initial-scale=1">
          <link rel="icon" type="image/x-icon" href="favicon.ico">
          <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap-icons@1.11.3/font/bootstrap-icons.min.css"
                integrity="{V}" crossorigin="anonymous">
          <script src="https://cdn.jsdelivr.net/npm/@okta/okta-signin-widget@7.14.0/dist/js/okta-sign-in.min.js"
                  integrity="{V2}" crossorigin="anonymous"></script>
        </head>
        <body>
          <bw-root></bw-root>
        </body>
        </html>
        """,
    ),
    _t(
        "portal/web/package-lock.json",
        "t18_npm_integrity",
        False,
        r"""
        {
          "name": "bwcl-patient-portal",
          "version": "4.12.0",
          "lockfileVersion": 3,
          "requires": true,
          "packages": {
            "node_modules/@okta/okta-auth-js": {
              "version": "7.7.0",
              "resolved": "https://registry.npmjs.org/@okta/okta-auth-js/-/okta-auth-js-7.7.0.tgz",
              "integrity": "{V}"
            },
            "node_modules/@bwcl/ui-kit": {
              "version": "2.3.1",
              "resolved": "https://npm.pkg.github.com/download/@bwcl/ui-kit/2.3.1/ui-kit-2.3.1.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
    ),
    _t(
        "portal/web/.npmrc",
        "t18_npm",
        True,
        r"""
        @bwcl:registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        save-exact=true
        engine-strict=true
        """,
    ),
    _t(
        "portal/shared-ui/.npmrc",
        "t18_npmrc_ref",
        False,
        r"""
        @bwcl:registry=https://npm.pkg.github.com/
        //npm.pkg.github.com/:_authToken={V}
        //registry.npmjs.org/:_authToken={V2}
        always-auth=true
        """,
    ),
    _t(
        "portal/nuget.config",
        "t18_ado_pat",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSources>
            <clear />
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
            <add key="bwcl-internal" value="https://pkgs.dev.azure.com/brightwaterlabs/_packaging/bwcl-internal/nuget/v3/index.json" />
          </packageSources>
          <packageSourceCredentials>
            <bwcl-internal>
              <add key="Username" value="portal-build" />
              <add key="ClearTextPassword" value="{V}" />
            </bwcl-internal>
          </packageSourceCredentials>
        </configuration>
        """,
    ),
    _t(
        "lims/tools/LabelPrinterBridge/nuget.config",
        "t18_ref_win",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSources>
            <add key="bwcl-internal" value="https://pkgs.dev.azure.com/brightwaterlabs/_packaging/bwcl-internal/nuget/v3/index.json" />
          </packageSources>
          <packageSourceCredentials>
            <bwcl-internal>
              <add key="Username" value="az" />
              <add key="ClearTextPassword" value="{V}" />
            </bwcl-internal>
          </packageSourceCredentials>
        </configuration>
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Api/packages.lock.json",
        "t18_nuget_hash",
        False,
        r"""
        {
          "version": 1,
          "dependencies": {
            "net8.0": {
              "Okta.AspNetCore": {
                "type": "Direct",
                "requested": "[4.6.1, )",
                "resolved": "4.6.1",
                "contentHash": "{V}"
              },
              "Twilio": {
                "type": "Direct",
                "requested": "[7.4.0, )",
                "resolved": "7.4.0",
                "contentHash": "{V2}"
              }
            }
          }
        }
        """,
    ),
    _t(
        "portal/deploy/keyring/key-3f6a2c1e-8b4d-4a7e-9c0f-5d2e1b7a9c31.xml",
        "t18_dp_key",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <key id="3f6a2c1e-8b4d-4a7e-9c0f-5d2e1b7a9c31" version="1">
          <creationDate>2024-02-19T14:03:11.5527721Z</creationDate>
          <activationDate>2024-02-19T14:03:11.4861203Z</activationDate>
          <expirationDate>2024-05-19T14:03:11.4861203Z</expirationDate>
          <descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60">
            <descriptor>
              <encryption algorithm="AES_256_CBC" />
              <validation algorithm="HMACSHA256" />
              <masterKey p4:requiresEncryption="true" xmlns:p4="http://schemas.asp.net/2015/03/dataProtection">
                <!-- Warning: the key below is in an unencrypted form. -->
                <value>{V}</value>
              </masterKey>
            </descriptor>
          </descriptor>
        </key>
        """,
    ),
    _t(
        "portal/deploy/keyring-prod/key-9a1b7c3d-2e4f-4061-8a7b-c9d0e1f2a3b4.xml",
        "t18_b64_cipher",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <key id="9a1b7c3d-2e4f-4061-8a7b-c9d0e1f2a3b4" version="1">
          <creationDate>2024-06-02T09:12:44.1022211Z</creationDate>
          <activationDate>2024-06-02T09:12:44.0701132Z</activationDate>
          <expirationDate>2024-08-31T09:12:44.0701132Z</expirationDate>
          <descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60">
            <descriptor>
              <encryption algorithm="AES_256_CBC" />
              <validation algorithm="HMACSHA256" />
              <encryptedSecret decryptorType="Azure.Extensions.AspNetCore.DataProtection.Keys.AzureKeyVaultXmlDecryptor, Azure.Extensions.AspNetCore.DataProtection.Keys" xmlns="http://schemas.asp.net/2015/03/dataProtection">
                <encryptedKey xmlns="">
                  <!-- This key is encrypted with Azure Key Vault. -->
                  <kid>https://kv-bwcl-portal.vault.azure.net/keys/dataprotection/4f1e2d3c4b5a69788796a5b4c3d2e1f0</kid>
                  <key>{V}</key>
                  <iv>{V2}</iv>
                  <value>{V3}</value>
                </encryptedKey>
              </encryptedSecret>
            </descriptor>
          </descriptor>
        </key>
        """,
    ),
    _t(
        "legacy/ResultsPortal/Web.config",
        "t18_b64_cipher",
        False,
        r"""
        <?xml version="1.0"?>
        <configuration>
          <connectionStrings configProtectionProvider="RsaProtectedConfigurationProvider">
            <EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element" xmlns="http://www.w3.org/2001/04/xmlenc#">
              <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#tripledes-cbc" />
              <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
                <EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#">
                  <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5" />
                  <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
                    <KeyName>Rsa Key</KeyName>
                  </KeyInfo>
                  <CipherData>
                    <CipherValue>{V}</CipherValue>
                  </CipherData>
                </EncryptedKey>
              </KeyInfo>
              <CipherData>
                <CipherValue>{V2}</CipherValue>
              </CipherData>
            </EncryptedData>
          </connectionStrings>
          <system.web>
            <compilation targetFramework="4.8" />
            <authentication mode="Forms"><forms loginUrl="~/Login.aspx" timeout="20" /></authentication>
          </system.web>
        </configuration>
        """,
    ),
    _t(
        "legacy/ResultsPortal.Reports/Web.config",
        "t18_pw",
        True,
        r"""
        <?xml version="1.0"?>
        <configuration>
          <appSettings>
            <add key="ReportServerUrl" value="http://bwcl-ssrs01/ReportServer" />
            <add key="ReportServerUser" value="BWCL\svc_ssrs_portal" />
            <add key="ReportServerPassword" value="{V}" />
          </appSettings>
          <connectionStrings>
            <add name="LimsReports"
                 connectionString="Data Source=bwcl-lims-sql01;Initial Catalog=LIMS_RPT;User ID=rptuser;Password={V2};"
                 providerName="System.Data.SqlClient" />
          </connectionStrings>
        </configuration>
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Api/appsettings.Staging.json",
        "t18_pem_escaped",
        True,
        r"""
        {
          "DocuSign": {
            "BasePath": "https://demo.docusign.net/restapi",
            "OAuthBasePath": "account-d.docusign.com",
            "IntegrationKey": "6f1c0d9a-3b2e-4c8d-9f7a-1e2d3c4b5a60",
            "ImpersonatedUserId": "2a7b9c1d-4e5f-4061-8a2b-3c4d5e6f7a80",
            "RsaPrivateKey": "{V}"
          },
          "Consent": { "TemplateId": "c4e2a1f0-7b6d-4d3c-9e8f-0a1b2c3d4e5f" }
        }
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Api/appsettings.DocuSign.json",
        "t18_guid",
        False,
        r"""
        {
          "DocuSign": {
            "BasePath": "https://na3.docusign.net/restapi",
            "OAuthBasePath": "account.docusign.com",
            "IntegrationKey": "{V}",
            "ImpersonatedUserId": "{V2}",
            "AccountId": "{V3}",
            "RsaPrivateKeySecretName": "docusign-jwt-rsa"
          }
        }
        """,
    ),
    _t(
        "portal/src/Brightwater.Portal.Api/appsettings.Certificates.json",
        "t18_thumbprint",
        False,
        r"""
        {
          "Kestrel": {
            "Certificates": {
              "Default": {
                "Subject": "portal.brightwaterlabs.com",
                "Store": "My",
                "Location": "LocalMachine",
                "Thumbprint": "{V}"
              }
            }
          },
          "EpicMtls": { "ClientCertificateThumbprint": "{V2}" }
        }
        """,
    ),
]

# ------------------------------------------------------------------ LIMS, interfaces, instruments
TEMPLATES += [
    _t(
        "interfaces/mirth/appdata/conf/mirth.properties",
        "t18_pw",
        True,
        r"""
        # Mirth Connect configuration file - BWCL interface engine (bwcl-mirth01)

        # directories
        dir.appdata = /opt/mirthconnect/appdata
        dir.tempdata = ${dir.appdata}/temp

        # ports
        http.port = 8080
        https.port = 8443

        # keystore
        keystore.path = ${dir.appdata}/keystore.jks
        keystore.storepass = {V}
        keystore.keypass = {V2}
        keystore.type = JCEKS

        # database
        database = postgres
        database.url = jdbc:postgresql://bwcl-pg-mirth01.corp.bwcl.org:5432/mirthdb
        database.username = mirth
        database.password = {V3}
        database.max-connections = 20
        """,
    ),
    _t(
        "interfaces/mirth-dr/appdata/conf/mirth.properties",
        "t18_placeholder",
        False,
        r"""
        # Mirth Connect configuration file - DR site (values injected by the container entrypoint)
        dir.appdata = /opt/mirthconnect/appdata
        http.port = 8080
        https.port = 8443

        keystore.path = ${dir.appdata}/keystore.jks
        keystore.storepass = {V}
        keystore.keypass = {V2}
        keystore.type = JCEKS

        database = postgres
        database.url = jdbc:postgresql://bwcl-pg-mirth-dr.corp.bwcl.org:5432/mirthdb
        database.username = mirth
        database.password = {V3}
        """,
    ),
    _t(
        "interfaces/mirth/channels/Epic_ORM_Inbound.xml",
        "t18_pw",
        True,
        r"""
        <channel version="4.4.2">
          <id>8e2b5f70-6a1d-4c33-9b8e-2f0a7d6c5b41</id>
          <name>Epic ORM Inbound - Orders to LIMS</name>
          <sourceConnector version="4.4.2">
            <transportName>TCP Listener</transportName>
            <properties class="com.mirth.connect.connectors.tcp.TcpReceiverProperties">
              <listenerConnectorProperties><host>0.0.0.0</host><port>6661</port></listenerConnectorProperties>
              <transmissionModeProperties class="com.mirth.connect.plugins.mllpmode.MLLPModeProperties"/>
            </properties>
          </sourceConnector>
          <destinationConnectors>
            <connector version="4.4.2">
              <name>Write to LIMS staging</name>
              <transportName>Database Writer</transportName>
              <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties">
                <driver>com.microsoft.sqlserver.jdbc.SQLServerDriver</driver>
                <url>jdbc:sqlserver://bwcl-lims-sql01:1433;databaseName=LIMS_STAGE</url>
                <username>svc_mirth_orders</username>
                <password>{V}</password>
                <query>INSERT INTO hl7_orders (msg_ctrl_id, raw) VALUES (${msgCtrlId}, ${message.encodedData})</query>
              </properties>
            </connector>
          </destinationConnectors>
        </channel>
        """,
    ),
    _t(
        "interfaces/mirth/channels/Results_ORU_Outbound.xml",
        "t18_mirth_ref",
        False,
        r"""
        <channel version="4.4.2">
          <id>1f9c7e35-2b84-4d06-a3c1-6e5d4f3a2b10</id>
          <name>Results ORU Outbound - LIMS to Epic</name>
          <destinationConnectors>
            <connector version="4.4.2">
              <name>Read released results</name>
              <transportName>Database Reader</transportName>
              <properties class="com.mirth.connect.connectors.jdbc.DatabaseReceiverProperties">
                <driver>com.microsoft.sqlserver.jdbc.SQLServerDriver</driver>
                <url>jdbc:sqlserver://bwcl-lims-sql01:1433;databaseName=LIMS_PROD</url>
                <username>${limsResultsUser}</username>
                <password>{V}</password>
              </properties>
            </connector>
          </destinationConnectors>
        </channel>
        """,
    ),
    _t(
        "interfaces/hl7/samples/ORU_R01_cbc.hl7",
        "t18_mrn",
        False,
        r"""
        MSH|^~\&|BWCL_LIMS|BWCL|EPIC|BWHEALTH|20240412093311||ORU^R01|{V}|P|2.5.1
        PID|1||{V2}^^^BWHEALTH^MR||TESTPATIENT^ALPHA||19800101|F
        ORC|RE|{V3}|{V4}
        OBR|1|{V3}|{V4}|58410-2^CBC panel^LN|||20240412071500
        OBX|1|NM|6690-2^WBC^LN||7.2|10*3/uL|4.0-11.0|N|||F
        OBX|2|NM|718-7^Hemoglobin^LN||13.9|g/dL|12.0-16.0|N|||F
        """,
    ),
    _t(
        "interfaces/hl7/samples/ADT_A04_register.hl7",
        "t18_hl7_ctrl",
        False,
        r"""
        MSH|^~\&|EPIC|BWHEALTH|BWCL_LIMS|BWCL|20240501110245||ADT^A04|{V}|P|2.3
        EVN|A04|20240501110245
        PID|1||E1002934^^^BWHEALTH^MR||SAMPLE^PATIENT^Q||19750615|M|||1 TEST ST^^SPRINGFIELD^OR^97477
        PV1|1|O|BWCL-DRAW^^^BWCL||||1234567893^WELBY^MARCUS
        MSH|^~\&|EPIC|BWHEALTH|BWCL_LIMS|BWCL|20240501110302||ADT^A08|{V2}|P|2.3
        """,
    ),
    _t(
        "interfaces/epic/backend-services/keys/bwcl-epic-nonprod.pem",
        "t18_rsa_pem",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "interfaces/epic/backend-services/keys/jwks.json",
        "t18_rsa_n",
        False,
        r"""
        {
          "keys": [
            {
              "kty": "RSA",
              "kid": "bwcl-epic-2024-01",
              "use": "sig",
              "alg": "RS384",
              "n": "{V}",
              "e": "AQAB"
            },
            {
              "kty": "RSA",
              "kid": "bwcl-epic-2024-07",
              "use": "sig",
              "alg": "RS384",
              "n": "{V2}",
              "e": "AQAB"
            }
          ]
        }
        """,
    ),
    _t(
        "interfaces/fhir/smart_backend_client.py",
        "t18_jwk_private",
        True,
        r"""
        '''SMART backend-services client for the Epic FHIR R4 sandbox (bulk $export of lab orders).'''
        import json
        import time
        import uuid

        import jwt  # PyJWT
        import requests

        TOKEN_URL = "https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token"
        CLIENT_ID = "a3f8e2c1-5b7d-4e90-8c6a-2d1f0b9e7a35"

        # ES256 key registered with the Epic app (non-prod). TODO move to Key Vault
        PRIVATE_JWK = json.loads('{V}')


        def get_token() -> str:
            now = int(time.time())
            key = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(PRIVATE_JWK))
            assertion = jwt.encode(
                {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": TOKEN_URL, "jti": str(uuid.uuid4()), "exp": now + 300},
                key,
                algorithm="ES256",
                headers={"kid": PRIVATE_JWK["kid"]},
            )
            resp = requests.post(TOKEN_URL, data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            }, timeout=30)
            resp.raise_for_status()
            return resp.json()["access_token"]
        """,
    ),
    _t(
        "interfaces/fhir/.well-known/jwks.json",
        "t18_jwks_public",
        False,
        r"""
        {
          "keys": [
            {V},
            {V2}
          ]
        }
        """,
    ),
    _t(
        "interfaces/fhir/tests/test_smart_backend_client.py",
        "t18_guid",
        False,
        r"""
        import smart_backend_client as c


        def test_assertion_claims(monkeypatch):
            monkeypatch.setattr(c, "CLIENT_ID", "{V}")
            claims = c.build_claims(now=1_700_000_000, jti="{V2}")
            assert claims["iss"] == claims["sub"] == "{V}"
            assert claims["exp"] - 1_700_000_000 == 300


        def test_group_export_url():
            url = c.export_url(group_id="{V3}")
            assert url.endswith("/Group/{V3}/$export?_type=ServiceRequest,Observation")
        """,
    ),
    _t(
        "interfaces/fhir/examples/Patient-test-01.json",
        "t18_mrn",
        False,
        r"""
        {
          "resourceType": "Patient",
          "id": "bwcl-test-01",
          "identifier": [
            { "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14", "value": "{V}" },
            { "system": "https://brightwaterlabs.com/fhir/sid/accession", "value": "{V2}" }
          ],
          "name": [{ "family": "Testpatient", "given": ["Beta"] }],
          "gender": "female",
          "birthDate": "1990-02-14"
        }
        """,
    ),
    _t(
        "lims/db/security/create_logins.sql",
        "t18_pw",
        True,
        r"""
        -- LIMS_PROD service logins (run on bwcl-lims-sql01 after restore)
        USE [master];
        GO
        IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'svc_lims_app')
            CREATE LOGIN [svc_lims_app] WITH PASSWORD = N'{V}', CHECK_POLICY = ON, DEFAULT_DATABASE = [LIMS_PROD];
        GO
        IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'portal_ro')
            CREATE LOGIN [portal_ro] WITH PASSWORD = N'{V2}', CHECK_EXPIRATION = OFF;
        GO
        USE [LIMS_PROD];
        CREATE USER [svc_lims_app] FOR LOGIN [svc_lims_app];
        ALTER ROLE [db_datareader] ADD MEMBER [portal_ro];
        GO
        """,
    ),
    _t(
        "lims/db/security/create_logins.template.sql",
        "t18_sqlcmd_var",
        False,
        r"""
        -- sqlcmd -S bwcl-lims-sql01 -i create_logins.template.sql -v LimsAppPassword="..." ReportingPassword="..."
        :on error exit
        USE [master];
        GO
        CREATE LOGIN [svc_lims_app] WITH PASSWORD = N'{V}', CHECK_POLICY = ON;
        GO
        CREATE LOGIN [rptuser] WITH PASSWORD = N'{V2}', CHECK_POLICY = ON;
        GO
        """,
    ),
    _t(
        "lims/db/seed/003_staff_users.sql",
        "t18_bcrypt",
        False,
        r"""
        -- Staff accounts for the courier scheduling app (passwords hashed with BCrypt.Net, work factor 11)
        INSERT INTO app_user (username, display_name, role, password_hash, must_change)
        VALUES
          ('dispatch01', 'Courier Dispatch', 'dispatcher', '{V}', 1),
          ('dispatch02', 'Courier Dispatch (nights)', 'dispatcher', '{V2}', 1),
          ('lab.supervisor', 'Lab Supervisor', 'admin', '{V3}', 1);
        """,
    ),
    _t(
        "lims/integrations/reference_labs/sftp_push.py",
        "t18_pw",
        True,
        r"""
        '''Push nightly send-out manifests to the reference labs over SFTP.'''
        import logging
        from pathlib import Path

        import paramiko

        log = logging.getLogger(__name__)

        PARTNERS = {
            "quest": {"host": "sftp.questdiagnostics.com", "user": "bwcl_sendout", "password": "{V}"},
            "labcorp": {"host": "mft.labcorp.com", "user": "BWCL0042", "password": "{V2}"},
        }


        def push(partner: str, files: list[Path]) -> None:
            cfg = PARTNERS[partner]
            transport = paramiko.Transport((cfg["host"], 22))
            transport.connect(username=cfg["user"], password=cfg["password"])
            sftp = paramiko.SFTPClient.from_transport(transport)
            try:
                for f in files:
                    sftp.put(str(f), f"/inbound/{f.name}")
                    log.info("sent %s to %s", f.name, partner)
            finally:
                sftp.close()
                transport.close()
        """,
    ),
    _t(
        "lims/integrations/reference_labs/test_sftp_push.py",
        "t18_fake_pw",
        False,
        r"""
        from unittest import mock

        import sftp_push


        @mock.patch("sftp_push.paramiko")
        def test_push_uses_partner_credentials(paramiko, tmp_path, monkeypatch):
            monkeypatch.setitem(sftp_push.PARTNERS, "quest", {"host": "sftp.test", "user": "u", "password": "{V}"})
            f = tmp_path / "manifest.csv"
            f.write_text("accession,test\n")
            sftp_push.push("quest", [f])
            paramiko.Transport.return_value.connect.assert_called_once_with(username="u", password="{V}")
        """,
    ),
    _t(
        "lims/integrations/reference_labs/known_hosts",
        "t18_ssh_hostkey",
        False,
        r"""
        {V}
        {V2}
        """,
    ),
    _t(
        "lims/instruments/roche-cobas/middleware.ini",
        "t18_pw",
        True,
        r"""
        ; cobas infinity bridge - BWCL core lab, line 2
        [Instrument]
        Model=cobas pro c503
        SerialPort=COM3
        Baud=9600
        Protocol=ASTM

        [Database]
        Server=BWCL-LIMS-SQL01
        Database=LIMS_PROD
        User=svc_cobas_bridge
        Password={V}

        [Export]
        ResultsShare=\\bwcl-fs02\instrument-results\cobas
        """,
    ),
    _t(
        "lims/instruments/sysmex-xn/xn_bridge.ini",
        "t18_placeholder",
        False,
        r"""
        ; Sysmex XN bridge - copy to C:\ProgramData\BWCL\xn_bridge.ini and fill in on site
        [Database]
        Server=BWCL-LIMS-SQL01
        Database=LIMS_PROD
        User=svc_sysmex_bridge
        Password={V}

        [Share]
        Path=\\bwcl-fs02\instrument-results\sysmex
        User=BWCL\svc_instr
        Password={V2}
        """,
    ),
    _t(
        "instrument-pcs/autologon/cobas-pc-07.reg",
        "t18_weak_pw",
        True,
        r"""
        Windows Registry Editor Version 5.00

        ; Kiosk autologon for the cobas line-2 workstation (instrument software needs an interactive session)
        [HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon]
        "AutoAdminLogon"="1"
        "DefaultUserName"="labtech"
        "DefaultDomainName"="COBAS-PC-07"
        "DefaultPassword"="{V}"
        "ForceAutoLogon"="1"
        """,
    ),
    _t(
        "instrument-pcs/unattend/Autounattend.xml",
        "t18_pw",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <unattend xmlns="urn:schemas-microsoft-com:unattend">
          <settings pass="oobeSystem">
            <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
              <UserAccounts>
                <AdministratorPassword>
                  <Value>{V}</Value>
                  <PlainText>true</PlainText>
                </AdministratorPassword>
                <LocalAccounts>
                  <LocalAccount wcm:action="add" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
                    <Name>labtech</Name>
                    <Group>Users</Group>
                    <Password>
                      <Value>{V2}</Value>
                      <PlainText>true</PlainText>
                    </Password>
                  </LocalAccount>
                </LocalAccounts>
              </UserAccounts>
              <TimeZone>Pacific Standard Time</TimeZone>
            </component>
          </settings>
        </unattend>
        """,
    ),
    _t(
        "instrument-pcs/scripts/Map-ResultShare.ps1",
        "t18_ref_ps",
        False,
        r"""
        #Requires -Version 5.1
        param([string]$Share = '\\bwcl-fs02\instrument-results')

        $user = 'BWCL\svc_instr'
        $plain = {V}
        $secure = ConvertTo-SecureString $plain -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential($user, $secure)

        if (-not (Get-PSDrive -Name R -ErrorAction SilentlyContinue)) {
            New-PSDrive -Name R -PSProvider FileSystem -Root $Share -Credential $cred -Persist | Out-Null
        }
        Write-Host "Mapped $Share to R:"
        """,
    ),
    _t(
        "instrument-pcs/scripts/map_results_share.bat",
        "t18_url_pw",
        True,
        r"""
        @echo off
        REM Map the instrument results share at logon (QuantStudio / Bio-Rad CFX PCs)
        net use R: /delete /y >nul 2>&1
        net use R: \\bwcl-fs02\instrument-results {V} /user:BWCL\svc_instr /persistent:yes
        if errorlevel 1 (
          echo Could not map results share, call Lab IT x4410
          pause
        )
        """,
    ),
    _t(
        "instrument-pcs/scripts/Set-KioskAutologon.ps1",
        "t18_ps_securestring",
        False,
        r"""
        # Encrypted with ConvertFrom-SecureString on THIS machine as SYSTEM (DPAPI) - useless elsewhere.
        $encrypted = '{V}'
        $secure = ConvertTo-SecureString $encrypted
        $bstr = [Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure)
        try {
            $plain = [Runtime.InteropServices.Marshal]::PtrToStringBSTR($bstr)
            Set-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon' DefaultPassword $plain
        } finally {
            [Runtime.InteropServices.Marshal]::ZeroFreeBSTR($bstr)
        }
        """,
    ),
    _t(
        "instrument-pcs/README.md",
        "t18_weak_pw",
        True,
        r"""
        # Instrument PCs

        These are the Windows 10 LTSC boxes attached to analysers. They are **not** domain joined
        (vendor support requirement) and are on VLAN 212 only.

        | PC | Analyser | Local admin | Password |
        |----|----------|-------------|----------|
        | COBAS-PC-07 | cobas pro c503 (line 2) | bwadmin | `{V}` |
        | QS-PC-02 | QuantStudio 7 Flex | bwadmin | `{V2}` |

        Vendor field engineers log in as `labtech` (autologon). If a PC is reimaged use the
        Autounattend.xml in `unattend/`.
        """,
    ),
    _t(
        "instrument-pcs/inventory.csv",
        "t18_asset_id",
        False,
        r"""
        hostname,analyser,asset_tag,vendor_serial,vlan,os
        COBAS-PC-07,cobas pro c503,{V},{V2},212,Win10 LTSC 2019
        QS-PC-02,QuantStudio 7 Flex,{V3},{V4},212,Win10 LTSC 2021
        XN-PC-01,Sysmex XN-1000,{V5},{V6},212,Win10 LTSC 2019
        """,
    ),
]

# ------------------------------------------------------------------ research HPC and data science
TEMPLATES += [
    _t(
        "hpc/slurm/etc/slurmdbd.conf",
        "t18_pw",
        True,
        r"""
        # slurmdbd.conf - bwcl-hpc accounting (managed by hand until the ansible role lands)
        AuthType=auth/munge
        DbdHost=hpc-db01
        DbdPort=6819
        SlurmUser=slurm
        DebugLevel=info
        LogFile=/var/log/slurm/slurmdbd.log
        PidFile=/run/slurmdbd/slurmdbd.pid

        StorageType=accounting_storage/mysql
        StorageHost=hpc-db01
        StoragePort=3306
        StorageUser=slurm
        StoragePass={V}
        StorageLoc=slurm_acct_db

        PurgeJobAfter=24month
        """,
    ),
    _t(
        "hpc/slurm/etc/slurm.conf",
        "t18_key_path",
        False,
        r"""
        ClusterName=bwcl-hpc
        SlurmctldHost=hpc-ctl01
        AuthType=auth/munge
        AuthAltTypes=auth/jwt
        AuthAltParameters=jwt_key={V}
        CryptoType=crypto/munge
        AccountingStorageType=accounting_storage/slurmdbd
        AccountingStorageHost=hpc-db01
        SelectType=select/cons_tres
        GresTypes=gpu
        NodeName=hpc-gpu[01-04] Gres=gpu:a100:4 CPUs=64 RealMemory=512000 State=UNKNOWN
        PartitionName=gpu Nodes=hpc-gpu[01-04] MaxTime=3-00:00:00 State=UP
        """,
    ),
    _t(
        "hpc/jupyterhub/jupyterhub_config.py",
        "t18_hex64",
        True,
        r"""
        # JupyterHub on hpc-login02 - spawns single-user servers as Slurm jobs
        c = get_config()  # noqa

        c.JupyterHub.bind_url = "https://jupyter.hpc.bwcl.org"
        c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
        c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"

        c.JupyterHub.cookie_secret = bytes.fromhex("{V}")
        c.ConfigurableHTTPProxy.auth_token = "{V2}"

        c.LDAPAuthenticator.server_address = "ldaps://ldap.corp.bwcl.org"
        c.LDAPAuthenticator.bind_dn_template = ["uid={username},ou=people,dc=bwcl,dc=org"]
        c.SlurmSpawner.req_partition = "interactive"
        c.SlurmSpawner.req_runtime = "8:00:00"
        """,
    ),
    _t(
        "hpc/jupyterhub-dev/jupyterhub_config.py",
        "t18_env_py",
        False,
        r"""
        import os
        import keyring
        import getpass
        from django.conf import settings

        c = get_config()  # noqa

        c.JupyterHub.bind_url = "http://127.0.0.1:8000"
        c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"
        c.ConfigurableHTTPProxy.auth_token = {V}
        c.LDAPAuthenticator.lookup_dn_search_password = {V2}
        """,
    ),
    _t(
        "hpc/ansible/roles/sssd/templates/sssd.conf",
        "t18_pw",
        True,
        r"""
        [sssd]
        services = nss, pam, ssh
        domains = bwcl.org

        [domain/bwcl.org]
        id_provider = ldap
        auth_provider = ldap
        ldap_uri = ldaps://ldap.corp.bwcl.org
        ldap_search_base = dc=bwcl,dc=org
        ldap_default_bind_dn = cn=svc_hpc_bind,ou=service,dc=bwcl,dc=org
        ldap_default_authtok_type = password
        ldap_default_authtok = {V}
        ldap_tls_reqcert = demand
        cache_credentials = true
        """,
    ),
    _t(
        "hpc/ansible/roles/pgbackup/files/pgpass",
        "t18_url_pw",
        True,
        r"""
        # hostname:port:database:username:password
        hpc-db01.corp.bwcl.org:5432:*:backup:{V}
        bwcl-pg-fhir01.corp.bwcl.org:5432:hapi:backup:{V2}
        """,
    ),
    _t(
        "hpc/ansible/group_vars/all/vault.yml",
        "t18_ansible_vault",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "hpc/ansible/group_vars/slurm_db.yml",
        "t18_pw",
        True,
        r"""
        ---
        mariadb_bind_address: 0.0.0.0
        mariadb_root_password: "{V}"
        mariadb_databases:
          - name: slurm_acct_db
        mariadb_users:
          - name: slurm
            password: "{V2}"
            priv: "slurm_acct_db.*:ALL"
            host: "hpc-%"
        """,
    ),
    _t(
        "hpc/ansible/host_vars/hpc-db02.yml",
        "t18_jinja_ref",
        False,
        r"""
        ---
        mariadb_bind_address: 10.40.2.12
        mariadb_root_password: "{V}"
        mariadb_users:
          - name: slurm
            password: "{V2}"
            priv: "slurm_acct_db.*:ALL"
        """,
    ),
    _t(
        "research/notebooks/cohort_pull_snowflake.ipynb",
        "t18_pw",
        True,
        r"""
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# Cohort pull: HbA1c > 6.5 in 2023 (IRB-2023-118)\n"]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "import snowflake.connector\n",
            "conn = snowflake.connector.connect(\n",
            "    account=\"bwcl-research\",\n",
            "    user=\"JLINDQVIST\",\n",
            "    password=\"{V}\",\n",
            "    warehouse=\"RESEARCH_WH\",\n",
            "    database=\"LAB_DW\",\n",
            "    schema=\"DEIDENT\",\n",
            ")\n"
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
        "research/notebooks/databricks_eda.ipynb",
        "t18_dbx_ref",
        False,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "sf_password = {V}\n",
            "sas = {V2}\n",
            "df = (spark.read.format(\"snowflake\")\n",
            "      .option(\"sfUrl\", \"bwcl-research.snowflakecomputing.com\")\n",
            "      .option(\"sfUser\", \"SVC_DATABRICKS\")\n",
            "      .option(\"sfPassword\", sf_password)\n",
            "      .option(\"dbtable\", \"DEIDENT.RESULTS_2023\").load())\n"
           ]
          }
         ],
         "metadata": {"application/vnd.databricks.v1+notebook": {"language": "python"}},
         "nbformat": 4,
         "nbformat_minor": 0
        }
        """,
    ),
    _t(
        "research/notebooks/qc_levey_jennings.ipynb",
        "t18_png_b64",
        False,
        r"""
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
              "text/plain": ["<Figure size 800x400 with 1 Axes>"]
             },
             "metadata": {},
             "output_type": "display_data"
            }
           ],
           "source": ["lj_plot(qc[qc.analyte == 'GLU'], mean=98.2, sd=2.1)\n"]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "research/R/connect_snowflake.R",
        "t18_pw",
        True,
        r"""
        library(DBI)
        library(odbc)

        # quick and dirty - used for the sepsis biomarker abstract
        con <- dbConnect(
          odbc::odbc(),
          Driver    = "SnowflakeDSIIDriver",
          Server    = "bwcl-research.snowflakecomputing.com",
          UID       = "MOKAFOR",
          PWD       = "{V}",
          Warehouse = "RESEARCH_WH",
          Database  = "LAB_DW",
          Schema    = "DEIDENT"
        )

        lactate <- dbGetQuery(con, "SELECT * FROM LACTATE_SERIAL WHERE COLLECTED_AT >= '2023-01-01'")
        """,
    ),
    _t(
        "research/R/connect_snowflake_keyring.R",
        "t18_ref_r",
        False,
        r"""
        library(DBI)
        library(odbc)

        con <- dbConnect(
          odbc::odbc(),
          Driver    = "SnowflakeDSIIDriver",
          Server    = "bwcl-research.snowflakecomputing.com",
          UID       = Sys.getenv("SNOWFLAKE_USER"),
          PWD       = {V},
          Warehouse = "RESEARCH_WH"
        )
        """,
    ),
    _t(
        "research/.Renviron",
        "t18_github",
        True,
        r"""
        R_LIBS_USER=/hpc/home/${USER}/R/%v
        GITHUB_PAT={V}
        RENV_PATHS_CACHE=/hpc/shared/renv-cache
        """,
    ),
    _t(
        "research/pipelines/.databrickscfg",
        "t18_databricks",
        True,
        r"""
        [DEFAULT]
        host  = https://adb-4417729031187713.13.azuredatabricks.net
        token = {V}

        [research-prod]
        host  = https://adb-8826105123399052.12.azuredatabricks.net
        token = {V2}
        jobs-api-version = 2.1
        """,
    ),
    _t(
        "research/pipelines/databricks.yml",
        "t18_dbx_conf_ref",
        False,
        r"""
        bundle:
          name: lab-dw-nightly

        resources:
          jobs:
            results_to_delta:
              name: results_to_delta
              job_clusters:
                - job_cluster_key: main
                  new_cluster:
                    spark_version: 14.3.x-scala2.12
                    node_type_id: Standard_D8ds_v5
                    num_workers: 4
                    spark_conf:
                      spark.snowflake.sfPassword: "{V}"
                      fs.azure.sas.raw.bwclresearchdl.blob.core.windows.net: "{V2}"
        """,
    ),
    _t(
        "research/ml/variant_caller/train.py",
        "t18_hf",
        True,
        r"""
        '''Fine-tune the DNA language model on the BWCL somatic panel (internal only).'''
        from huggingface_hub import login
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        login(token="{V}")  # bwcl-research org, write scope - needed to push checkpoints

        BASE = "bwcl-research/nt-500m-somatic-v2"
        tok = AutoTokenizer.from_pretrained(BASE)
        model = AutoModelForTokenClassification.from_pretrained(BASE, num_labels=3)
        """,
    ),
    _t(
        "research/ml/variant_caller/README.md",
        "t18_fake_hf",
        False,
        r"""
        # variant_caller

        Log in to the Hub before training (token from the `bwcl-research` org settings, **read**
        scope is enough unless you push checkpoints):

        ```bash
        export HF_TOKEN={V}
        python train.py --epochs 3
        ```

        In CI the tests use `HF_TOKEN={V2}` and monkeypatch the download.
        """,
    ),
    _t(
        "research/posit/deploy_tat_dashboard.sh",
        "t18_rsconnect_key",
        True,
        r"""
        #!/usr/bin/env bash
        set -euo pipefail
        export CONNECT_SERVER="https://connect.research.bwcl.org"
        export CONNECT_API_KEY="{V}"

        rsconnect deploy shiny ./research/shiny/tat-dashboard \
          --server "$CONNECT_SERVER" --api-key "$CONNECT_API_KEY" \
          --title "Turnaround time dashboard"
        """,
    ),
    _t(
        "research/shiny/tat-dashboard/manifest.json",
        "t18_md5",
        False,
        r"""
        {
          "version": 1,
          "locale": "en_US",
          "platform": "4.3.2",
          "metadata": { "appmode": "shiny", "primary_rmd": null },
          "files": {
            "app.R": { "checksum": "{V}" },
            "config.yml": { "checksum": "{V2}" },
            "R/queries.R": { "checksum": "{V3}" }
          }
        }
        """,
    ),
    _t(
        "research/snowflake/connections.toml",
        "t18_pw",
        True,
        r"""
        default_connection_name = "research"

        [research]
        account = "bwcl-research"
        user = "SVC_RESEARCH_ETL"
        password = "{V}"
        warehouse = "RESEARCH_WH"
        database = "LAB_DW"
        role = "RESEARCH_ETL"

        [lims_share]
        account = "bwcl-prod"
        user = "SVC_SHARE_READER"
        password = "{V2}"
        """,
    ),
    _t(
        "research/snowflake/config.toml",
        "t18_sf_account",
        False,
        r"""
        [connections.dbt_keypair]
        account = "{V}"
        user = "SVC_DBT"
        authenticator = "SNOWFLAKE_JWT"
        private_key_file = "~/.snowflake/rsa_key.p8"

        [connections.sso]
        account = "{V2}"
        user = "jlindqvist@brightwaterlabs.com"
        authenticator = "externalbrowser"
        """,
    ),
    _t(
        "research/snowflake/setup_keypair.sql",
        "t18_rsa_pub_body",
        False,
        r"""
        -- Key-pair auth for the dbt service user. Public key only; the private key is in Key Vault.
        USE ROLE SECURITYADMIN;
        ALTER USER SVC_DBT SET RSA_PUBLIC_KEY = '{V}';
        -- rotation: second slot
        ALTER USER SVC_DBT SET RSA_PUBLIC_KEY_2 = '{V2}';
        DESC USER SVC_DBT;
        """,
    ),
    _t(
        "research/snowflake/key_fingerprints.md",
        "t18_sf_fp",
        False,
        r"""
        # Snowflake key-pair fingerprints

        Compare with `DESC USER` -> `RSA_PUBLIC_KEY_FP` after rotating.

        | user | slot | fingerprint |
        |------|------|-------------|
        | SVC_DBT | 1 | `{V}` |
        | SVC_DBT | 2 | `{V2}` |
        | SVC_DATABRICKS | 1 | `{V3}` |
        """,
    ),
    _t(
        "research/snowflake/keys/svc_dbt_rsa_key.p8",
        "t18_pkcs8",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "research/snowflake/keys/svc_databricks_rsa_key.p8",
        "t18_enc_key",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "research/dbt/profiles.yml",
        "t18_pw",
        True,
        r"""
        lab_dw:
          target: dev
          outputs:
            dev:
              type: snowflake
              account: bwcl-research
              user: PCHEN
              password: "{V}"
              role: ANALYST
              warehouse: RESEARCH_WH
              database: LAB_DW_DEV
              schema: dbt_pchen
              threads: 8
        """,
    ),
    _t(
        "analytics/dbt/profiles.yml",
        "t18_jinja_ref",
        False,
        r"""
        lab_dw:
          target: prod
          outputs:
            prod:
              type: snowflake
              account: bwcl-prod
              user: SVC_DBT_PROD
              password: "{V}"
              role: TRANSFORMER
              warehouse: TRANSFORM_WH
              database: LAB_DW
              schema: marts
              threads: 16
        """,
    ),
    _t(
        "hpc/containers/variant-pipeline.def",
        "t18_github",
        True,
        r"""
        Bootstrap: docker
        From: mambaorg/micromamba:1.5.8

        %post
            micromamba install -y -n base -c conda-forge -c bioconda python=3.11 samtools=1.19 bcftools=1.19
            # private helpers repo
            git clone https://x-access-token:{V}@github.com/brightwater-labs/bw-genomics-utils.git /opt/bwgu
            pip install /opt/bwgu

        %environment
            export PATH=/opt/conda/bin:$PATH

        %labels
            Maintainer hpc-admin@bwcl.org
        """,
    ),
    _t(
        "hpc/slurm/job_templates/gpu_finetune.sbatch",
        "t18_ref_sh",
        False,
        r"""
        #!/bin/bash
        #SBATCH --job-name=nt-finetune
        #SBATCH --partition=gpu
        #SBATCH --gres=gpu:a100:2
        #SBATCH --time=24:00:00
        #SBATCH --output=logs/%x-%j.out

        module load cuda/12.2 miniforge/24.3
        conda activate nt-train

        export HF_TOKEN={V}
        export SNOWFLAKE_PASSWORD={V2}
        srun python train.py --epochs 3 --bf16
        """,
    ),
    _t(
        "hpc/slurm/job_templates/nightly_s3_export.sbatch",
        "t18_aws_env_pair",
        True,
        r"""
        #!/bin/bash
        #SBATCH --job-name=cro-s3-export
        #SBATCH --partition=batch
        #SBATCH --time=02:00:00

        # CRO (Meridian Trials) data drop bucket - they gave us an IAM user, not a role
        {V}
        export AWS_DEFAULT_REGION=us-west-2

        aws s3 sync /hpc/projects/meridian-2024/exports/ s3://meridian-bwcl-dropbox/incoming/ --sse AES256
        """,
    ),
    _t(
        "hpc/backup/restic.env",
        "t18_pw",
        True,
        r"""
        # restic repository for /hpc/projects (nightly, hpc-bk01)
        RESTIC_REPOSITORY=azure:hpc-restic:/projects
        RESTIC_PASSWORD='{V}'
        AZURE_ACCOUNT_NAME=bwclhpcbackup
        """,
    ),
    _t(
        "hpc/backup/rclone.conf",
        "t18_azure_storage_key",
        True,
        r"""
        [azblob-archive]
        type = azureblob
        account = bwclhpcarchive
        key = {V}
        access_tier = Cool

        [azblob-scratch]
        type = azureblob
        account = bwclhpcscratch
        key = {V2}
        """,
    ),
    _t(
        "research/genomics/summarize_reports.py",
        "t18_aoai_key",
        True,
        r"""
        '''Draft plain-language summaries of variant reports for genetic counsellors (pilot).'''
        from openai import AzureOpenAI

        client = AzureOpenAI(
            azure_endpoint="https://bwcl-research-aoai.openai.azure.com/",
            api_key="{V}",
            api_version="2024-06-01",
        )


        def summarize(report_text: str) -> str:
            resp = client.chat.completions.create(
                model="gpt-4o-bwcl",
                messages=[{"role": "user", "content": f"Summarize for a patient:\n{report_text}"}],
            )
            return resp.choices[0].message.content
        """,
    ),
    _t(
        "research/genomics/summarize_reports_v2.py",
        "t18_env_py",
        False,
        r"""
        import os
        import getpass
        import keyring
        from django.conf import settings
        from openai import AzureOpenAI

        # falls back to Entra ID when no key is configured
        api_key = {V}
        client = AzureOpenAI(
            azure_endpoint="https://bwcl-research-aoai.openai.azure.com/",
            api_key=api_key,
            api_version="2024-06-01",
        )
        """,
    ),
    _t(
        "research/requirements.lock.txt",
        "t18_digest",
        False,
        r"""
        # pip-compile --generate-hashes requirements.in
        pandas==2.2.2 \
            --hash=sha256:{V} \
            --hash=sha256:{V2}
        snowflake-connector-python==3.10.1 \
            --hash=sha256:{V3}
        """,
    ),
    _t(
        "research/renv.lock",
        "t18_md5",
        False,
        r"""
        {
          "R": { "Version": "4.3.2", "Repositories": [{ "Name": "CRAN", "URL": "https://packagemanager.posit.co/cran/latest" }] },
          "Packages": {
            "DBI": { "Package": "DBI", "Version": "1.2.2", "Source": "Repository", "Hash": "{V}" },
            "odbc": { "Package": "odbc", "Version": "1.4.2", "Source": "Repository", "Hash": "{V2}" },
            "keyring": { "Package": "keyring", "Version": "1.3.2", "Source": "Repository", "Hash": "{V3}" }
          }
        }
        """,
    ),
    _t(
        "hpc/ansible/roles/users/files/authorized_keys",
        "t18_ssh_pub",
        False,
        r"""
        # hpc-admin group - managed by ansible, do not edit on the host
        {V}
        {V2}
        {V3}
        """,
    ),
]

# ------------------------------------------------------------------ Azure, Terraform, VMware
TEMPLATES += [
    _t(
        "infra/terraform/azure/providers.tf",
        "t18_azure_secret",
        True,
        r"""
        terraform {
          required_providers {
            azurerm = { source = "hashicorp/azurerm", version = "~> 3.110" }
          }
          backend "azurerm" {
            resource_group_name  = "rg-bwcl-tfstate"
            storage_account_name = "bwcltfstate"
            container_name       = "tfstate"
            key                  = "platform.tfstate"
          }
        }

        provider "azurerm" {
          features {}
          subscription_id = "5b1c9e2a-7d3f-4a80-b6c4-2e9d1f0a8b73"
          tenant_id       = "c2d4e6f8-0a1b-4c3d-9e5f-7a8b9c0d1e2f"
          client_id       = "e7a1b3c5-d9f2-4e60-8a4b-6c8d0e2f4a61"
          client_secret   = "{V}"
        }
        """,
    ),
    _t(
        "infra/terraform/azure/sql.tf",
        "t18_ref_tf",
        False,
        r"""
        resource "random_password" "sql_admin" {
          length  = 32
          special = true
        }

        resource "azurerm_mssql_server" "portal" {
          name                         = "bwcl-portal-sql"
          resource_group_name          = azurerm_resource_group.portal.name
          location                     = azurerm_resource_group.portal.location
          version                      = "12.0"
          administrator_login          = "bwsqladmin"
          administrator_login_password = {V}
          minimum_tls_version          = "1.2"
        }

        resource "azurerm_key_vault_secret" "results_storage_key" {
          name         = "results-storage-key"
          value        = {V2}
          key_vault_id = azurerm_key_vault.ops.id
        }
        """,
    ),
    _t(
        "infra/terraform/azure/.terraform.lock.hcl",
        "t18_tf_hash",
        False,
        r"""
        # This file is maintained automatically by "terraform init".
        # Manual edits may be lost in future updates.

        provider "registry.terraform.io/hashicorp/azurerm" {
          version     = "3.110.0"
          constraints = "~> 3.110"
          hashes = [
            "{V}",
            "{V2}",
            "{V3}",
          ]
        }
        """,
    ),
    _t(
        "infra/terraform/azure/terraform.tfvars",
        "t18_pw",
        True,
        r"""
        location            = "westus2"
        environment         = "prod"
        sql_admin_login     = "bwsqladmin"
        sql_admin_password  = "{V}"
        vm_admin_username   = "bwcladmin"
        vm_admin_password   = "{V2}"
        tags = {
          owner       = "platform@brightwaterlabs.com"
          cost_center = "IT-4410"
        }
        """,
    ),
    _t(
        "infra/terraform/azure/terraform.tfvars.example",
        "t18_placeholder",
        False,
        r"""
        # Copy to terraform.tfvars (git-ignored) and fill in. Prod values come from the pipeline.
        location            = "westus2"
        environment         = "dev"
        sql_admin_login     = "bwsqladmin"
        sql_admin_password  = "{V}"
        vm_admin_username   = "bwcladmin"
        vm_admin_password   = "{V2}"
        """,
    ),
    _t(
        "infra/terraform/azure/backend-prod.hcl",
        "t18_azure_storage_key",
        True,
        r"""
        resource_group_name  = "rg-bwcl-tfstate"
        storage_account_name = "bwcltfstate"
        container_name       = "tfstate"
        key                  = "prod/platform.tfstate"
        access_key           = "{V}"
        """,
    ),
    _t(
        "infra/terraform/okta/terraform.tfvars",
        "t18_okta_token",
        True,
        r"""
        okta_org_name  = "brightwater"
        okta_base_url  = "okta.com"
        okta_api_token = "{V}"
        portal_redirect_uris = [
          "https://portal.brightwaterlabs.com/login/callback",
        ]
        """,
    ),
    _t(
        "infra/terraform/okta/outputs.auto.tfvars.json",
        "t18_okta_client_id",
        False,
        r"""
        {
          "portal_spa_client_id": "{V}",
          "staff_sso_client_id": "{V2}",
          "lims_saml_app_id": "{V3}",
          "authorization_server_id": "aus4x2portal"
        }
        """,
    ),
    _t(
        "infra/terraform/databricks/terraform.tfvars",
        "t18_databricks",
        True,
        r"""
        databricks_host  = "https://adb-8826105123399052.12.azuredatabricks.net"
        databricks_token = "{V}"
        cluster_policy   = "research-standard"
        """,
    ),
    _t(
        "infra/terraform/azure/keyvault_refs.tf",
        "t18_ref_tf",
        False,
        r"""
        data "azurerm_key_vault_secret" "okta_token" {
          name         = "okta-api-token"
          key_vault_id = data.azurerm_key_vault.ops.id
        }

        provider "okta" {
          org_name  = "brightwater"
          base_url  = "okta.com"
          api_token = {V}
        }

        provider "snowflake" {
          account  = "bwcl-prod"
          user     = "TF_ADMIN"
          password = {V2}
        }
        """,
    ),
    _t(
        "infra/vmware/Connect-BwclVcenter.ps1",
        "t18_pw",
        True,
        r"""
        # Quick connect for the on-prem cluster (vcsa01). Run from the jump box.
        Import-Module VMware.PowerCLI
        Set-PowerCLIConfiguration -InvalidCertificateAction Ignore -Confirm:$false | Out-Null

        Connect-VIServer -Server vcsa01.corp.bwcl.org -User 'administrator@vsphere.local' -Password '{V}'

        Get-VM -Location 'LIMS' | Select-Object Name, PowerState, NumCpu, MemoryGB |
            Export-Csv -NoTypeInformation "C:\Reports\lims-vms-$(Get-Date -f yyyyMMdd).csv"
        """,
    ),
    _t(
        "infra/vmware/Get-VmInventory.ps1",
        "t18_ref_ps",
        False,
        r"""
        param([string]$Server = 'vcsa01.corp.bwcl.org')
        $cred = Get-Credential -Message 'vCenter'
        $password = {V}
        $secure = ConvertTo-SecureString -String $password -AsPlainText -Force
        $viCred = [pscredential]::new('svc_inventory@vsphere.local', $secure)
        Connect-VIServer -Server $Server -Credential $viCred | Out-Null
        Get-VM | Select-Object Name, PowerState, @{n='Host';e={$_.VMHost.Name}}
        """,
    ),
    _t(
        "infra/vmware/govc.env",
        "t18_pw",
        True,
        r"""
        export GOVC_URL=https://vcsa01.corp.bwcl.org/sdk
        export GOVC_USERNAME=svc_govc@vsphere.local
        export GOVC_PASSWORD='{V}'
        export GOVC_DATACENTER=BWCL-DC1
        export GOVC_INSECURE=1
        """,
    ),
    _t(
        "infra/vmware/govc-ci.env",
        "t18_ref_sh",
        False,
        r"""
        export GOVC_URL=https://vcsa01.corp.bwcl.org/sdk
        export GOVC_USERNAME=svc_govc@vsphere.local
        export GOVC_PASSWORD={V}
        export GOVC_TLS_CA_CERTS=/etc/ssl/bwcl/vcsa01-ca.pem
        """,
    ),
    _t(
        "infra/vmware/vcenter-tls-thumbprints.txt",
        "t18_colon_fpr",
        False,
        r"""
        # SHA-1 thumbprints for GOVC_TLS_KNOWN_HOSTS / esxcli --thumbprint
        vcsa01.corp.bwcl.org {V}
        esx01.corp.bwcl.org {V2}
        esx02.corp.bwcl.org {V3}
        """,
    ),
    _t(
        "infra/vmware/kickstart/esxi8-lab.cfg",
        "t18_pw",
        True,
        r"""
        vmaccepteula
        install --firstdisk --overwritevmfs
        rootpw {V}
        network --bootproto=static --ip=10.40.8.21 --netmask=255.255.255.0 --gateway=10.40.8.1 --hostname=esx03.corp.bwcl.org --nameserver=10.40.1.10
        reboot

        %firstboot --interpreter=busybox
        vim-cmd hostsvc/enable_ssh
        esxcli system ntp set --server=ntp.corp.bwcl.org --enabled=true
        """,
    ),
    _t(
        "infra/vmware/kickstart/esxi8-prod.cfg",
        "t18_sha512crypt",
        False,
        r"""
        vmaccepteula
        install --firstdisk --overwritevmfs
        rootpw --iscrypted {V}
        network --bootproto=dhcp --device=vmnic0
        reboot
        """,
    ),
    _t(
        "infra/azure/storage/push-instrument-exports.ps1",
        "t18_sas_url",
        True,
        r"""
        # Scheduled task on BWCL-FS02: ship instrument CSV exports to blob for the data lake
        $src = 'E:\instrument-results\*'
        $dst = '{V}'
        & 'C:\Tools\azcopy\azcopy.exe' copy $src $dst --recursive --overwrite=ifSourceNewer --log-level=WARNING
        if ($LASTEXITCODE -ne 0) { Write-EventLog -LogName Application -Source BWCL -EventId 4410 -Message 'azcopy failed' }
        """,
    ),
    _t(
        "infra/azure/functions/result-notifier/local.settings.json",
        "t18_azure_storage_conn",
        True,
        r"""
        {
          "IsEncrypted": false,
          "Values": {
            "AzureWebJobsStorage": "{V}",
            "FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated",
            "ResultsArchive": "{V2}",
            "NotifyQueue": "result-ready"
          }
        }
        """,
    ),
    _t(
        "infra/azure/functions/courier-eta/local.settings.json",
        "t18_dev_storage",
        False,
        r"""
        {
          "IsEncrypted": false,
          "Values": {
            "AzureWebJobsStorage": "{V}",
            "FUNCTIONS_WORKER_RUNTIME": "node",
            "RoutesTable": "courierroutes"
          }
        }
        """,
    ),
    _t(
        "infra/azure/functions/hl7-relay/appsettings.prod.json",
        "t18_kv_ref",
        False,
        r"""
        [
          { "name": "ServiceBusConnection", "value": "{V}", "slotSetting": false },
          { "name": "ArchiveStorage", "value": "{V2}", "slotSetting": false },
          { "name": "FUNCTIONS_EXTENSION_VERSION", "value": "~4", "slotSetting": false }
        ]
        """,
    ),
    _t(
        "infra/azure/servicebus/hl7-relay.env",
        "t18_sb_conn",
        True,
        r"""
        # hl7-relay on bwcl-mirth01 -> Service Bus (orders topic)
        SERVICEBUS_CONNECTION_STRING="{V}"
        SERVICEBUS_TOPIC=orders
        RELAY_BATCH_SIZE=50
        """,
    ),
    _t(
        "infra/azure/bicep/main.bicep",
        "t18_ref_bicep",
        False,
        r"""
        @secure()
        param sqlAdminPassword string
        param location string = resourceGroup().location

        resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
          name: 'kv-bwcl-portal'
        }

        resource storage 'Microsoft.Storage/storageAccounts@2023-01-01' existing = {
          name: 'bwclresultsprod'
        }

        module app './portal-app.bicep' = {
          name: 'portal-app'
          params: {
            location: location
            storageKey: {V}
            sqlPassword: {V2}
          }
        }
        """,
    ),
    _t(
        "infra/azure/bicep/main.parameters.dev.json",
        "t18_pw",
        True,
        r"""
        {
          "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
          "contentVersion": "1.0.0.0",
          "parameters": {
            "location": { "value": "westus2" },
            "sqlAdminLogin": { "value": "bwsqladmin" },
            "sqlAdminPassword": { "value": "{V}" },
            "vmAdminPassword": { "value": "{V2}" }
          }
        }
        """,
    ),
    _t(
        "infra/azure/bicep/main.parameters.prod.json",
        "t18_secret_name",
        False,
        r"""
        {
          "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
          "contentVersion": "1.0.0.0",
          "parameters": {
            "sqlAdminPassword": {
              "reference": {
                "keyVault": { "id": "/subscriptions/5b1c9e2a-7d3f-4a80-b6c4-2e9d1f0a8b73/resourceGroups/rg-bwcl-ops/providers/Microsoft.KeyVault/vaults/kv-bwcl-ops" },
                "secretName": "{V}"
              }
            },
            "vmAdminPassword": {
              "reference": {
                "keyVault": { "id": "/subscriptions/5b1c9e2a-7d3f-4a80-b6c4-2e9d1f0a8b73/resourceGroups/rg-bwcl-ops/providers/Microsoft.KeyVault/vaults/kv-bwcl-ops" },
                "secretName": "{V2}"
              }
            }
          }
        }
        """,
    ),
    _t(
        "infra/azure/arm/deployment-outputs.json",
        "t18_guid",
        False,
        r"""
        {
          "tenantId": { "type": "String", "value": "{V}" },
          "subscriptionId": { "type": "String", "value": "{V2}" },
          "portalApiPrincipalId": { "type": "String", "value": "{V3}" },
          "keyVaultUri": { "type": "String", "value": "https://kv-bwcl-portal.vault.azure.net/" }
        }
        """,
    ),
    _t(
        "infra/acr/push-lims-worker.sh",
        "t18_acr_pw",
        True,
        r"""
        #!/usr/bin/env bash
        # build + push lims-worker from the build VM (no managed identity there yet)
        set -euo pipefail
        TAG=${1:-$(git rev-parse --short HEAD)}
        docker login bwclregistry.azurecr.io -u bwclregistry -p '{V}'
        docker build -t bwclregistry.azurecr.io/lims-worker:"$TAG" services/lims-worker
        docker push bwclregistry.azurecr.io/lims-worker:"$TAG"
        """,
    ),
    _t(
        "infra/acr/push-portal-api.sh",
        "t18_ref_sh",
        False,
        r"""
        #!/usr/bin/env bash
        set -euo pipefail
        TAG=${1:?tag}
        echo {V} | docker login bwclregistry.azurecr.io -u bwcl-push --password-stdin
        docker push bwclregistry.azurecr.io/portal-api:"$TAG"
        """,
    ),
    _t(
        "infra/sql/restore_lims_to_uat.sh",
        "t18_pw",
        True,
        r"""
        #!/usr/bin/env bash
        # Refresh LIMS_UAT from last night's prod backup (run on bwcl-sql-uat01)
        set -euo pipefail
        BAK=$(ls -1t /mnt/sqlbackup/LIMS_PROD_*.bak | head -1)
        /opt/mssql-tools18/bin/sqlcmd -S localhost -U sa -P '{V}' -C -Q "
          RESTORE DATABASE LIMS_UAT FROM DISK = N'$BAK'
          WITH MOVE 'LIMS_PROD' TO '/var/opt/mssql/data/LIMS_UAT.mdf',
               MOVE 'LIMS_PROD_log' TO '/var/opt/mssql/data/LIMS_UAT_log.ldf', REPLACE"
        """,
    ),
    _t(
        "infra/sql/backup_lims.sh",
        "t18_ref_sh",
        False,
        r"""
        #!/usr/bin/env bash
        set -euo pipefail
        export SQLCMDPASSWORD={V}
        /opt/mssql-tools18/bin/sqlcmd -S bwcl-lims-sql01 -U svc_backup -C \
          -Q "BACKUP DATABASE LIMS_PROD TO DISK = N'/mnt/sqlbackup/LIMS_PROD_$(date +%F).bak' WITH COMPRESSION"
        """,
    ),
    _t(
        "infra/network/backup-fortigate.sh",
        "t18_pw",
        True,
        r"""
        #!/bin/bash
        # nightly config backup of the lab firewalls (cron on bwcl-mgmt01)
        DEST=/srv/netbackup/$(date +%F)
        mkdir -p "$DEST"
        for fw in fw-core01 fw-core02 fw-draw-sites; do
          sshpass -p '{V}' scp -o StrictHostKeyChecking=no backupadmin@"$fw".corp.bwcl.org:sys_config "$DEST/$fw.conf"
        done
        """,
    ),
    _t(
        "infra/certs/portal.brightwaterlabs.com.key",
        "t18_ec_pem",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "infra/certs/portal.brightwaterlabs.com.crt",
        "t18_cert",
        False,
        r"""
        {V}
        {V2}
        """,
    ),
    _t(
        "infra/certs/lims.corp.bwcl.org.csr",
        "t18_csr",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "infra/certs/README.md",
        "t18_ref_sh",
        False,
        r"""
        # Certificates

        Export the portal PFX for IIS (password comes from Key Vault, never typed):

        ```bash
        PFX_PASS={V}
        openssl pkcs12 -export -in portal.brightwaterlabs.com.crt -inkey portal.brightwaterlabs.com.key \
          -out portal.pfx -passout env:PFX_PASS
        ```
        """,
    ),
    _t(
        "infra/certs/epic-mtls/pfx-password.txt",
        "t18_pw",
        True,
        r"""
        {V}
        """,
    ),
]

# ------------------------------------------------------------------ Kubernetes, Helm, Compose, CI, monitoring
TEMPLATES += [
    _t(
        "infra/k8s/lims-api/secret.yaml",
        "t18_pw",
        True,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: lims-api-db
          namespace: lims
          labels:
            app.kubernetes.io/name: lims-api
        type: Opaque
        stringData:
          DB_HOST: bwcl-lims-sql01.corp.bwcl.org
          DB_USER: svc_lims_api
          DB_PASSWORD: "{V}"
          RABBITMQ_PASSWORD: "{V2}"
        """,
    ),
    _t(
        "infra/k8s/results-api/secret.yaml",
        "t18_b64_pw",
        True,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: results-api-db
          namespace: results
        type: Opaque
        data:
          username: cmVzdWx0c19hcGk=
          password: {V}
        """,
    ),
    _t(
        "infra/k8s/lims-api/externalsecret.yaml",
        "t18_secret_name",
        False,
        r"""
        apiVersion: external-secrets.io/v1beta1
        kind: ExternalSecret
        metadata:
          name: lims-api-db
          namespace: lims
        spec:
          refreshInterval: 1h
          secretStoreRef:
            kind: ClusterSecretStore
            name: azure-kv-bwcl-ops
          target:
            name: lims-api-db
          data:
            - secretKey: DB_PASSWORD
              remoteRef:
                key: {V}
            - secretKey: RABBITMQ_PASSWORD
              remoteRef:
                key: {V2}
        """,
    ),
    _t(
        "infra/k8s/portal/sealedsecret-portal.yaml",
        "t18_sealed",
        False,
        r"""
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: portal-secrets
          namespace: portal
        spec:
          encryptedData:
            TWILIO_AUTH_TOKEN: {V}
            OKTA_CLIENT_SECRET: {V2}
          template:
            metadata:
              name: portal-secrets
            type: Opaque
        """,
    ),
    _t(
        "infra/k8s/secrets/lims.enc.yaml",
        "t18_sops",
        False,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: lims-worker
          namespace: lims
        stringData:
          SNOWFLAKE_PASSWORD: {V}
          SFTP_PASSWORD: {V2}
        sops:
          azure_kv:
            - vault_url: https://kv-bwcl-ops.vault.azure.net
              name: sops-key
              version: 8f2e4a6c0b1d4e3f9a7c5b3d1e0f2a4c
              created_at: "2024-04-03T18:22:10Z"
              enc: 2Zq9Vd1mX7
          lastmodified: "2024-04-03T18:22:11Z"
          version: 3.8.1
        """,
    ),
    _t(
        ".sops.yaml",
        "t18_age_public",
        False,
        r"""
        creation_rules:
          - path_regex: infra/k8s/secrets/.*\.enc\.yaml$
            encrypted_regex: ^(data|stringData)$
            age: >-
              {V},
              {V2}
          - path_regex: hpc/.*\.enc\.yaml$
            age: {V3}
        """,
    ),
    _t(
        "infra/k8s/ingress/jupyter-basic-auth.htpasswd",
        "t18_apr1",
        False,
        r"""
        rtan:{V}
        mokafor:{V2}
        hpc-admin:{V3}
        """,
    ),
    _t(
        "infra/k8s/lims-api/deployment.yaml",
        "t18_digest",
        False,
        r"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: lims-api
          namespace: lims
        spec:
          replicas: 3
          selector:
            matchLabels: { app: lims-api }
          template:
            metadata:
              labels: { app: lims-api }
            spec:
              containers:
                - name: api
                  image: bwclregistry.azurecr.io/lims-api@sha256:{V}
                  envFrom:
                    - secretRef: { name: lims-api-db }
                - name: otel
                  image: otel/opentelemetry-collector-contrib@sha256:{V2}
        """,
    ),
    _t(
        "infra/helm/mirth/values-prod.yaml",
        "t18_pw",
        True,
        r"""
        image:
          repository: nextgenhealthcare/connect
          tag: "4.4.2"

        mirth:
          adminUser: admin
          adminPassword: "{V}"
          keystore:
            storepass: "{V2}"

        database:
          host: bwcl-pg-mirth01.corp.bwcl.org
          name: mirthdb
          user: mirth
          password: "{V3}"

        service:
          type: LoadBalancer
          mllpPorts: [6661, 6662, 6663]
        """,
    ),
    _t(
        "infra/helm/mirth/values.yaml",
        "t18_placeholder",
        False,
        r"""
        # Default values for mirth. Override per environment; prod uses existingSecret.
        mirth:
          adminUser: admin
          adminPassword: "{V}"
          existingSecret: ""
        database:
          host: ""
          name: mirthdb
          user: mirth
          password: "{V2}"
        """,
    ),
    _t(
        "infra/helm/mirth/templates/secret.yaml",
        "t18_helm_ref",
        False,
        r"""
        {{- if not .Values.mirth.existingSecret }}
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ include "mirth.fullname" . }}
        type: Opaque
        data:
          admin-password: {V}
          db-password: {V2}
        {{- end }}
        """,
    ),
    _t(
        "infra/compose/lims-dev/docker-compose.yml",
        "t18_weak_pw",
        True,
        r"""
        services:
          mssql:
            image: mcr.microsoft.com/mssql/server:2022-latest
            environment:
              ACCEPT_EULA: "Y"
              MSSQL_SA_PASSWORD: "{V}"
            ports: ["1433:1433"]

          rabbitmq:
            image: rabbitmq:3.13-management
            environment:
              RABBITMQ_DEFAULT_USER: lims
              RABBITMQ_DEFAULT_PASS: "{V2}"
            ports: ["5672:5672", "15672:15672"]

          lims-api:
            build: ../../../services/lims-api
            depends_on: [mssql, rabbitmq]
        """,
    ),
    _t(
        "infra/compose/lims-ci/docker-compose.yml",
        "t18_compose_ref",
        False,
        r"""
        services:
          mssql:
            image: mcr.microsoft.com/mssql/server:2022-latest
            environment:
              ACCEPT_EULA: "Y"
              MSSQL_SA_PASSWORD: "{V}"
          rabbitmq:
            image: rabbitmq:3.13
            environment:
              RABBITMQ_DEFAULT_USER: lims
              RABBITMQ_DEFAULT_PASS: "{V2}"
        """,
    ),
    _t(
        "services/lims-worker/Dockerfile",
        "t18_jfrog",
        True,
        r"""
        FROM python:3.11-slim AS build
        ARG ARTIFACTORY_USER=svc-ci
        ARG ARTIFACTORY_API_KEY={V}
        ENV PIP_INDEX_URL=https://${ARTIFACTORY_USER}:${ARTIFACTORY_API_KEY}@bwcl.jfrog.io/artifactory/api/pypi/pypi-virtual/simple
        WORKDIR /src
        COPY requirements.txt .
        RUN pip wheel --wheel-dir /wheels -r requirements.txt

        FROM python:3.11-slim
        COPY --from=build /wheels /wheels
        RUN pip install --no-index /wheels/* && rm -rf /wheels
        COPY . /app
        CMD ["python", "-m", "lims_worker"]
        """,
    ),
    _t(
        "services/portal-api/Dockerfile",
        "t18_secret_name",
        False,
        r"""
        # syntax=docker/dockerfile:1.7
        FROM mcr.microsoft.com/dotnet/sdk:8.0 AS build
        WORKDIR /src
        COPY . .
        RUN --mount=type=secret,id={V},env=NUGET_PAT \
            dotnet restore --configfile nuget.ci.config && \
            dotnet publish src/Brightwater.Portal.Api -c Release -o /out

        FROM mcr.microsoft.com/dotnet/aspnet:8.0
        COPY --from=build /out /app
        ENTRYPOINT ["dotnet", "/app/Brightwater.Portal.Api.dll"]
        """,
    ),
    _t(
        ".github/workflows/portal-deploy.yml",
        "t18_azure_secret",
        True,
        r"""
        name: portal-deploy
        on:
          push:
            branches: [main]
            paths: ["portal/**"]

        env:
          AZURE_TENANT_ID: c2d4e6f8-0a1b-4c3d-9e5f-7a8b9c0d1e2f
          AZURE_CLIENT_ID: e7a1b3c5-d9f2-4e60-8a4b-6c8d0e2f4a61
          AZURE_CLIENT_SECRET: "{V}"

        jobs:
          deploy:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: az login --service-principal -u "$AZURE_CLIENT_ID" -p "$AZURE_CLIENT_SECRET" --tenant "$AZURE_TENANT_ID"
              - run: az webapp deploy -g rg-bwcl-portal -n bwcl-portal-api --src-path portal/out.zip
        """,
    ),
    _t(
        ".github/workflows/lims-ci.yml",
        "t18_ref_gh",
        False,
        r"""
        name: lims-ci
        on: [pull_request]

        jobs:
          test:
            runs-on: ubuntu-latest
            services:
              mssql:
                image: mcr.microsoft.com/mssql/server:2022-latest
                env:
                  ACCEPT_EULA: "Y"
                  MSSQL_SA_PASSWORD: {V}
            steps:
              - uses: actions/checkout@v4
              - uses: azure/login@v2
                with:
                  creds: '{"clientId":"e7a1b3c5-d9f2-4e60-8a4b-6c8d0e2f4a61","clientSecret":"{V2}","tenantId":"c2d4e6f8-0a1b-4c3d-9e5f-7a8b9c0d1e2f"}'
              - run: dotnet test lims/Lims.sln
        """,
    ),
    _t(
        ".github/dependabot.yml",
        "t18_ref_gh",
        False,
        r"""
        version: 2
        registries:
          bwcl-nuget:
            type: nuget-feed
            url: https://pkgs.dev.azure.com/brightwaterlabs/_packaging/bwcl-internal/nuget/v3/index.json
            token: {V}
          bwcl-npm:
            type: npm-registry
            url: https://npm.pkg.github.com
            token: {V2}
        updates:
          - package-ecosystem: nuget
            directory: /portal
            registries: [bwcl-nuget]
            schedule: { interval: weekly }
        """,
    ),
    _t(
        "azure-pipelines/mirth-deploy.yml",
        "t18_pw",
        True,
        r"""
        trigger:
          branches: { include: [main] }
          paths: { include: [interfaces/mirth/channels/*] }

        pool: { name: bwcl-onprem }

        variables:
          mirthUrl: https://bwcl-mirth01.corp.bwcl.org:8443/api
          mirthAdminUser: admin
          mirthAdminPassword: '{V}'

        steps:
          - script: |
              mirth-cli -a $(mirthUrl) -u $(mirthAdminUser) -p '{V}' -s interfaces/mirth/deploy.txt
            displayName: Deploy channels
        """,
    ),
    _t(
        "azure-pipelines/portal-build.yml",
        "t18_ref_ado",
        False,
        r"""
        trigger: [main]
        pool: { vmImage: ubuntu-latest }
        variables:
          - group: portal-prod-secrets
        steps:
          - task: NuGetAuthenticate@1
          - script: dotnet publish portal/src/Brightwater.Portal.Api -c Release -o $(Build.ArtifactStagingDirectory)
          - task: FileTransform@2
            inputs:
              folderPath: $(Build.ArtifactStagingDirectory)
              jsonTargetFiles: appsettings.json
          - script: ./scripts/smoke.sh --password {V} --feed-token {V2}
        """,
    ),
    _t(
        "hpc/jenkins/Jenkinsfile",
        "t18_secret_name",
        False,
        r"""
        pipeline {
          agent { label 'hpc-login' }
          environment {
            DB_CREDS = credentials('{V}')
            SF_CREDS = credentials('{V2}')
          }
          stages {
            stage('Build container') {
              steps { sh 'apptainer build variant-pipeline.sif hpc/containers/variant-pipeline.def' }
            }
            stage('Smoke') {
              steps { sh 'sbatch --wait hpc/slurm/job_templates/smoke.sbatch' }
            }
          }
        }
        """,
    ),
    _t(
        "hpc/jenkins/credentials.xml",
        "t18_jenkins_enc",
        False,
        r"""
        <?xml version='1.1' encoding='UTF-8'?>
        <com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1337.v60b_d7b_c7b_c9f">
          <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
            <entry>
              <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
              <java.util.concurrent.CopyOnWriteArrayList>
                <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                  <id>slurmdb-admin</id>
                  <username>slurm</username>
                  <password>{V}</password>
                </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                <org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
                  <id>snowflake-svc</id>
                  <secret>{V2}</secret>
                </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
              </java.util.concurrent.CopyOnWriteArrayList>
            </entry>
          </domainCredentialsMap>
        </com.cloudbees.plugins.credentials.SystemCredentialsProvider>
        """,
    ),
    _t(
        "infra/monitoring/datadog/datadog.yaml",
        "t18_datadog_api",
        True,
        r"""
        api_key: {V}
        site: us3.datadoghq.com
        hostname_fqdn: true
        logs_enabled: true
        apm_config:
          enabled: true
        tags:
          - env:prod
          - team:lab-it
        """,
    ),
    _t(
        "infra/monitoring/datadog/terraform.tfvars",
        "t18_datadog_app",
        True,
        r"""
        datadog_api_url = "https://api.us3.datadoghq.com/"
        datadog_app_key = "{V}"
        monitor_notify  = "@pagerduty-bwcl-lab-it"
        """,
    ),
    _t(
        "infra/monitoring/datadog/conf.d/sqlserver.d/conf.yaml",
        "t18_dd_ref",
        False,
        r"""
        init_config:

        instances:
          - host: bwcl-lims-sql01,1433
            username: datadog
            password: "{V}"
            connector: odbc
            driver: ODBC Driver 18 for SQL Server
            dbm: true
            tags: [db:lims_prod]
          - host: bwcl-portal-sql.database.windows.net,1433
            username: datadog
            password: "{V2}"
        """,
    ),
    _t(
        "infra/monitoring/alertmanager/alertmanager.yml",
        "t18_slack_webhook",
        True,
        r"""
        global:
          resolve_timeout: 5m

        route:
          receiver: lab-it-slack
          routes:
            - matchers: [team="hpc"]
              receiver: hpc-slack

        receivers:
          - name: lab-it-slack
            slack_configs:
              - api_url: '{V}'
                channel: '#lab-it-alerts'
                send_resolved: true
          - name: hpc-slack
            slack_configs:
              - api_url: '{V2}'
                channel: '#hpc-alerts'
        """,
    ),
    _t(
        "infra/monitoring/alertmanager/pagerduty.yml",
        "t18_pd_key",
        True,
        r"""
        receivers:
          - name: lims-oncall
            pagerduty_configs:
              - routing_key: {V}
                severity: critical
                description: '{{ .CommonAnnotations.summary }}'
          - name: interfaces-oncall
            pagerduty_configs:
              - routing_key: {V2}
        """,
    ),
    _t(
        "infra/monitoring/grafana/provisioning/datasources/lims.yaml",
        "t18_grafana_ref",
        False,
        r"""
        apiVersion: 1
        datasources:
          - name: LIMS (read replica)
            type: mssql
            url: bwcl-lims-sqlrep.corp.bwcl.org:1433
            user: grafana_ro
            jsonData:
              database: LIMS_RPT
              encrypt: "true"
            secureJsonData:
              password: {V}
        """,
    ),
    _t(
        "infra/okta/okta.yaml",
        "t18_okta_token",
        True,
        r"""
        okta:
          client:
            orgUrl: "https://brightwater.okta.com"
            token: "{V}"
            connectionTimeout: 30
            requestTimeout: 0
        """,
    ),
    _t(
        "infra/okta/okta.yaml.example",
        "t18_fake_okta",
        False,
        r"""
        # copy to ~/.okta/okta.yaml; create a token under Security > API > Tokens (read-only admin)
        okta:
          client:
            orgUrl: "https://brightwater.okta.com"
            token: "{V}"
        """,
    ),
]

# ------------------------------------------------------------------ services (TS, Go, Java/Kotlin, Rust, PHP, Ruby, Python)
TEMPLATES += [
    _t(
        "services/notify/src/config.ts",
        "t18_twilio_token",
        True,
        r"""
        import { z } from 'zod';

        // Result-ready SMS and draw-appointment reminders.
        export const twilioConfig = {
          accountSid: 'AC9f8e7d6c5b4a39281706f5e4d3c2b1a0',
          authToken: '{V}',
          messagingServiceSid: 'MG1a2b3c4d5e6f708192a3b4c5d6e7f809',
          statusCallback: 'https://notify.brightwaterlabs.com/twilio/status',
        };

        export const schema = z.object({ to: z.string().regex(/^\+1\d{10}$/), template: z.enum(['result_ready', 'draw_reminder']) });
        """,
    ),
    _t(
        "services/notify/src/config.prod.ts",
        "t18_ref_js",
        False,
        r"""
        import config from 'config';
        import { getSecret } from './keyvault';
        import { requireEnv } from './env';

        export async function loadTwilioConfig() {
          return {
            accountSid: requireEnv('TWILIO_ACCOUNT_SID'),
            authToken: {V},
            messagingServiceSid: requireEnv('TWILIO_MESSAGING_SERVICE_SID'),
            sendgridKey: {V2},
          };
        }
        """,
    ),
    _t(
        "services/notify/test/twilio.spec.ts",
        "t18_twilio_sid",
        False,
        r"""
        import { buildMessage } from '../src/sms';

        describe('buildMessage', () => {
          it('uses the messaging service, not a from number', () => {
            const msg = buildMessage({ accountSid: '{V}', messagingServiceSid: '{V2}' }, '+15035550142', 'result_ready');
            expect(msg.messagingServiceSid).toBe('{V2}');
            expect(msg.from).toBeUndefined();
          });

          it('keeps the account sid for status callbacks', () => {
            expect(buildMessage({ accountSid: '{V}', messagingServiceSid: '{V2}' }, '+15035550199', 'draw_reminder').accountSid).toBe('{V}');
          });
        });
        """,
    ),
    _t(
        "services/notify/.env",
        "t18_sendgrid",
        True,
        r"""
        NODE_ENV=production
        PORT=8080
        SENDGRID_API_KEY={V}
        SENDGRID_FROM=results@brightwaterlabs.com
        LOG_LEVEL=info
        """,
    ),
    _t(
        "services/notify/.env.example",
        "t18_placeholder",
        False,
        r"""
        NODE_ENV=development
        PORT=8080
        TWILIO_ACCOUNT_SID=
        TWILIO_AUTH_TOKEN={V}
        SENDGRID_API_KEY={V2}
        SENDGRID_FROM=results@brightwaterlabs.com
        """,
    ),
    _t(
        "services/notify/src/webhooks/twilioSignature.spec.ts",
        "t18_sig_b64",
        False,
        r"""
        import { isValidTwilioRequest } from './twilioSignature';

        // Captured X-Twilio-Signature headers (HMAC-SHA1 of URL + params) from the staging callback log.
        const cases = [
          { url: 'https://notify-staging.brightwaterlabs.com/twilio/status', sig: '{V}' },
          { url: 'https://notify-staging.brightwaterlabs.com/twilio/inbound', sig: '{V2}' },
        ];

        it.each(cases)('rejects a replayed signature for $url', ({ url, sig }) => {
          expect(isValidTwilioRequest('wrong-token-for-test', sig, url, {})).toBe(false);
        });
        """,
    ),
    _t(
        "services/esign/internal/docusign/client.go",
        "t18_rsa_pem",
        True,
        r"""
        package docusign

        import (
        	"context"
        	"time"

        	"github.com/golang-jwt/jwt/v5"
        )

        const (
        	integrationKey = "6f1c0d9a-3b2e-4c8d-9f7a-1e2d3c4b5a60"
        	impersonatedID = "2a7b9c1d-4e5f-4061-8a2b-3c4d5e6f7a80"
        	oauthHost      = "account-d.docusign.com"
        )

        // rsaKey is the JWT grant key for the consent-forms integration (demo account).
        var rsaKey = []byte(`{V}
        `)

        func (c *Client) token(ctx context.Context) (string, error) {
        	key, err := jwt.ParseRSAPrivateKeyFromPEM(rsaKey)
        	if err != nil {
        		return "", err
        	}
        	claims := jwt.MapClaims{"iss": integrationKey, "sub": impersonatedID, "aud": oauthHost,
        		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "scope": "signature impersonation"}
        	return c.exchange(ctx, jwt.NewWithClaims(jwt.SigningMethodRS256, claims), key)
        }
        """,
    ),
    _t(
        "services/esign/internal/docusign/client_test.go",
        "t18_guid",
        False,
        r"""
        package docusign

        import "testing"

        func TestEnvelopeURL(t *testing.T) {
        	c := &Client{accountID: "{V}", baseURL: "https://demo.docusign.net/restapi"}
        	got := c.envelopeURL("{V2}")
        	want := "https://demo.docusign.net/restapi/v2.1/accounts/{V}/envelopes/{V2}"
        	if got != want {
        		t.Fatalf("got %s want %s", got, want)
        	}
        }
        """,
    ),
    _t(
        "services/consent-app/config/initializers/docusign.rb",
        "t18_ref_rb",
        False,
        r"""
        # frozen_string_literal: true

        DocusignConfig = Struct.new(:integration_key, :user_id, :account_id, :secret_key, :rsa_key, keyword_init: true)

        Rails.application.config.docusign = DocusignConfig.new(
          integration_key: ENV.fetch("DOCUSIGN_INTEGRATION_KEY"),
          user_id: ENV.fetch("DOCUSIGN_USER_ID"),
          account_id: ENV.fetch("DOCUSIGN_ACCOUNT_ID"),
          secret_key: {V},
          rsa_key: {V2}
        )
        """,
    ),
    _t(
        "services/consent-app/config/credentials/production.yml.enc",
        "t18_rails_enc",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "services/billing/src/Gateway/StripeGateway.php",
        "t18_stripe_sk",
        True,
        r"""
        <?php

        namespace Bwcl\Billing\Gateway;

        use Stripe\StripeClient;

        final class StripeGateway
        {
            // patient self-pay balances (portal "Pay my bill")
            private const SECRET_KEY = '{V}';

            private StripeClient $stripe;

            public function __construct()
            {
                $this->stripe = new StripeClient(self::SECRET_KEY);
            }

            public function createPaymentIntent(int $amountCents, string $invoiceNo): string
            {
                $intent = $this->stripe->paymentIntents->create([
                    'amount' => $amountCents,
                    'currency' => 'usd',
                    'metadata' => ['invoice' => $invoiceNo],
                ]);
                return $intent->client_secret;
            }
        }
        """,
    ),
    _t(
        "services/payments/src/main/resources/application-prod.properties",
        "t18_pw",
        True,
        r"""
        spring.application.name=payments
        server.port=8080

        spring.datasource.url=jdbc:sqlserver://bwcl-billing-sql01.corp.bwcl.org:1433;databaseName=BILLING;encrypt=true
        spring.datasource.username=svc_payments
        spring.datasource.password={V}

        spring.rabbitmq.host=bwcl-mq01.corp.bwcl.org
        spring.rabbitmq.username=payments
        spring.rabbitmq.password={V2}

        management.endpoints.web.exposure.include=health,info
        """,
    ),
    _t(
        "services/payments/src/main/resources/application.properties",
        "t18_jasypt",
        False,
        r"""
        spring.application.name=payments
        jasypt.encryptor.password=${JASYPT_ENCRYPTOR_PASSWORD}
        jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256

        spring.datasource.url=jdbc:sqlserver://bwcl-billing-sql01.corp.bwcl.org:1433;databaseName=BILLING
        spring.datasource.username=svc_payments
        spring.datasource.password={V}
        spring.rabbitmq.password={V2}
        """,
    ),
    _t(
        "services/payments/src/test/kotlin/com/bwcl/payments/PaymentRepositoryTest.kt",
        "t18_weak_pw",
        True,
        r"""
        package com.bwcl.payments

        import org.junit.jupiter.api.Test
        import org.springframework.boot.test.context.SpringBootTest
        import org.springframework.test.context.DynamicPropertyRegistry
        import org.springframework.test.context.DynamicPropertySource
        import org.testcontainers.containers.MSSQLServerContainer
        import org.testcontainers.junit.jupiter.Container
        import org.testcontainers.junit.jupiter.Testcontainers

        @SpringBootTest
        @Testcontainers
        class PaymentRepositoryTest {
            companion object {
                @Container
                val mssql = MSSQLServerContainer("mcr.microsoft.com/mssql/server:2022-latest")
                    .acceptLicense()
                    .withPassword("{V}")

                @JvmStatic
                @DynamicPropertySource
                fun props(r: DynamicPropertyRegistry) {
                    r.add("spring.datasource.url", mssql::getJdbcUrl)
                    r.add("spring.datasource.password") { "{V}" }
                }
            }

            @Test
            fun `stores a payment`() { /* ... */ }
        }
        """,
    ),
    _t(
        "services/specimen-router/config/production.toml",
        "t18_url_pw",
        True,
        r"""
        [server]
        bind = "0.0.0.0:8088"

        [amqp]
        url = "amqps://specimen_router:{V}@bwcl-mq01.corp.bwcl.org:5671/lims"
        exchange = "specimens"
        prefetch = 32

        [database]
        url = "postgres://router:{V2}@bwcl-pg-apps01.corp.bwcl.org:5432/router?sslmode=require"
        max_connections = 10
        """,
    ),
    _t(
        "services/specimen-router/src/config.rs",
        "t18_ref_rust",
        False,
        r"""
        use anyhow::Result;
        use std::env;

        pub struct AmqpSettings {
            pub user: String,
            pub password: String,
            pub host: String,
        }

        pub fn amqp_from_env() -> Result<AmqpSettings> {
            Ok(AmqpSettings {
                user: env::var("AMQP_USER").unwrap_or_else(|_| "specimen_router".into()),
                password: {V},
                host: env::var("AMQP_HOST")?,
            })
        }
        """,
    ),
    _t(
        "services/results-api/internal/store/postgres.go",
        "t18_url_pw",
        True,
        r"""
        package store

        import (
        	"context"

        	"github.com/jackc/pgx/v5/pgxpool"
        )

        // TODO(PLAT-233): read from env once the results-api chart has a secret
        const defaultDSN = "postgres://results_api:{V}@bwcl-pg-apps01.corp.bwcl.org:5432/results?sslmode=require"

        func Open(ctx context.Context) (*pgxpool.Pool, error) {
        	return pgxpool.New(ctx, defaultDSN)
        }
        """,
    ),
    _t(
        "services/results-api/internal/store/dsn_test.go",
        "t18_doc_url",
        False,
        r"""
        package store

        import "testing"

        func TestRedactDSN(t *testing.T) {
        	for _, in := range []string{
        		"{V}",
        		"{V2}",
        	} {
        		if got := RedactDSN(in); got == in {
        			t.Fatalf("RedactDSN(%q) did not redact", in)
        		}
        	}
        }
        """,
    ),
    _t(
        "services/results-api/go.sum",
        "t18_gosum",
        False,
        r"""
        github.com/jackc/pgx/v5 v5.6.0 {V}
        github.com/jackc/pgx/v5 v5.6.0/go.mod {V2}
        github.com/jackc/puddle/v2 v2.2.1 {V3}
        """,
    ),
    _t(
        "services/audit-export/export.sh",
        "t18_basic_b64",
        True,
        r"""
        #!/usr/bin/env bash
        # Monthly CLIA audit export from the LIMS REST API (run by cron on bwcl-mgmt01)
        set -euo pipefail
        MONTH=${1:-$(date -d 'last month' +%Y-%m)}
        curl -fsS -H "Authorization: Basic {V}" \
          "https://lims-api.corp.bwcl.org/v2/audit/export?month=${MONTH}&format=csv" \
          -o "/srv/audit/lims-audit-${MONTH}.csv"
        """,
    ),
    _t(
        "docs/api/audit-export.md",
        "t18_doc_basic",
        False,
        r"""
        # LIMS audit export API

        Basic auth with a LIMS service account. Base64-encode `user:password` yourself:

        ```bash
        curl -H "Authorization: Basic {V}" \
          "https://lims-api.corp.bwcl.org/v2/audit/export?month=2024-05&format=csv"
        ```

        A 401 with `WWW-Authenticate: Basic realm="lims"` means the header is missing or wrong.
        """,
    ),
    _t(
        "services/alerts/teams_notify.py",
        "t18_logicapp_url",
        True,
        r"""
        '''Post critical-value escalations to the Lab Ops Teams channel (Workflows webhook).'''
        import requests

        WORKFLOW_URL = "{V}"


        def post_critical(accession: str, analyte: str, value: str) -> None:
            card = {
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {"type": "AdaptiveCard", "version": "1.4",
                                "body": [{"type": "TextBlock", "text": f"CRITICAL {analyte}={value} ({accession})"}]},
                }],
            }
            requests.post(WORKFLOW_URL, json=card, timeout=10).raise_for_status()
        """,
    ),
    _t(
        "services/alerts/README.md",
        "t18_doc_webhook",
        False,
        r"""
        # alerts

        Set the webhook in Key Vault (`alerts-teams-webhook`), not in code. The URL looks like:

            {V}

        For Slack use an incoming webhook of the `#lab-it-alerts` app, e.g. `{V2}`.
        """,
    ),
    _t(
        "services/chatops/bwbot.py",
        "t18_slack_bot",
        True,
        r"""
        '''/bw slash commands: TAT lookups and instrument status for the lab leads.'''
        from slack_bolt import App
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        app = App(token="{V}")


        @app.command("/bw-tat")
        def tat(ack, respond, command):
            ack()
            respond(f"TAT for {command['text']}: pulling from LIMS_RPT...")


        if __name__ == "__main__":
            SocketModeHandler(app, app_token=None).start()
        """,
    ),
    _t(
        "tools/release/publish-ui-kit.sh",
        "t18_github_fine",
        True,
        r"""
        #!/usr/bin/env bash
        # publish @bwcl/ui-kit to GitHub Packages and tag the release
        set -euo pipefail
        export GH_TOKEN={V}
        npm publish --registry https://npm.pkg.github.com --//npm.pkg.github.com/:_authToken="$GH_TOKEN"
        gh release create "ui-kit-v$(node -p 'require("./package.json").version')" --generate-notes
        """,
    ),
    _t(
        "portal/web/.sentryclirc",
        "t18_sentry_org",
        True,
        r"""
        [defaults]
        url = https://sentry.io/
        org = brightwater-clinical
        project = patient-portal-web

        [auth]
        token = {V}
        """,
    ),
    _t(
        "tools/ssh/hpc_deploy_key",
        "t18_openssh",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "docs/dev/aws-cli.md",
        "t18_aws_example",
        False,
        r"""
        # AWS CLI for the CRO drop bucket

        `aws configure --profile meridian` writes `~/.aws/credentials` like this (AWS's sample keys):

        ```ini
        [meridian]
        {V}
        region = us-west-2
        ```

        Ask Research IT for the real keys; they are in Key Vault as `meridian-s3-user`.
        """,
    ),
    _t(
        "portal/web/src/app/shared/validators/password.validator.ts",
        "t18_pw_policy",
        False,
        r"""
        import { AbstractControl, ValidationErrors, ValidatorFn } from '@angular/forms';

        // Mirrors Okta's patient password policy; the strings are shown in the sign-up form help text.
        export const PASSWORD_POLICY = '{V}';
        export const PASSWORD_POLICY_STAFF = '{V2}';
        const PASSWORD_RULE = /^(?=.*[A-Z])(?=.*[a-z])(?=.*\d).{12,}$/;

        export const passwordPolicy: ValidatorFn = (c: AbstractControl): ValidationErrors | null =>
          PASSWORD_RULE.test(c.value ?? '') ? null : { passwordPolicy: true };
        """,
    ),
]

# ------------------------------------------------------------------ docs, runbooks, chat exports
TEMPLATES += [
    _t(
        "docs/runbooks/mirth-failover.md",
        "t18_pw",
        True,
        r"""
        # Runbook: fail Mirth over to the DR node

        **When:** bwcl-mirth01 is down for more than 15 minutes and Epic orders are queuing.

        1. On bwcl-mirth-dr01, start the service: `sudo systemctl start mcservice`.
        2. Log in to the Administrator as `admin` / `{V}` and enable the channels in the
           "Epic" group (they are deployed but stopped on DR).
        3. Ask the Epic Bridges team (#epic-interfaces) to repoint the outbound ORM connection to
           `10.40.3.25:6661`.
        4. Postgres on DR is a streaming replica: promote it with
           `sudo -u postgres pg_ctl promote -D /var/lib/pgsql/16/data`, then update
           `database.password` if the DR password was rotated (current: `{V2}`).
        5. Post in #lab-ops when results are flowing again.
        """,
    ),
    _t(
        "docs/runbooks/lims-password-rotation.md",
        "t18_op_ref",
        False,
        r"""
        # Runbook: rotate LIMS service account passwords

        Quarterly, or immediately after a leaver with DBA rights.

        | account | where the password lives |
        |---------|--------------------------|
        | svc_lims_app | {V} |
        | svc_mirth_orders | {V2} |
        | local admin on instrument PCs | {V3} |

        1. Generate a new password in the vault (32 chars, no quotes).
        2. `ALTER LOGIN ... WITH PASSWORD = N'<new>' OLD_PASSWORD = N'<old>'` on bwcl-lims-sql01.
        3. Restart the consumers listed in the CMDB entry.
        """,
    ),
    _t(
        "docs/onboarding/new-lab-tech.txt",
        "t18_weak_pw",
        True,
        r"""
        BRIGHTWATER CLINICAL LABS - NEW LAB TECH CHECKLIST (core lab, day shift)

        1. Badge + Okta account are created by HR/IT before day one.
        2. First login on a lab workstation: user = your Okta username, temporary password = {V}
           (you will be forced to change it).
        3. LIMS training environment (lims-train.corp.bwcl.org): log in as trainee01 / {V2}
        4. Instrument PCs auto-log on; do not sign out of the labtech session.
        5. Questions: Lab IT x4410 or #it-helpdesk.
        """,
    ),
    _t(
        "docs/onboarding/portal-help.html",
        "t18_ui_text",
        False,
        r"""
        <!DOCTYPE html>
        <html lang="es">
        <head><meta charset="utf-8"><title>Ayuda del portal</title></head>
        <body>
          <h1>Preguntas frecuentes</h1>
          <h2>{V}</h2>
          <p>Si olvidó su contraseña, haga clic en <em>{V2}</em> en la página de inicio de sesión.
             Le enviaremos un enlace por correo electrónico o SMS.</p>
          <p class="note">{V3}</p>
          <form><label>Contraseña <input type="password" name="password" placeholder="{V4}"></label></form>
        </body>
        </html>
        """,
    ),
    _t(
        "exports/slack/it-helpdesk/2024-03-14.json",
        "t18_pw",
        True,
        r"""
        [
          {
            "type": "message",
            "user": "U04KQ2ZL7MP",
            "user_name": "dana.whitfield",
            "text": "anyone know the login for the LIMS UAT sql? restore job is failing",
            "ts": "1710425023.118299"
          },
          {
            "type": "message",
            "user": "U03B8TRX1AA",
            "user_name": "raj.tan",
            "text": "sa / {V} - it's the same one that's in the restore script. please don't paste it anywhere else :grimacing:",
            "ts": "1710425109.120019"
          },
          {
            "type": "message",
            "user": "U04KQ2ZL7MP",
            "user_name": "dana.whitfield",
            "text": "thanks! that worked",
            "ts": "1710425301.121402"
          }
        ]
        """,
    ),
    _t(
        "exports/slack/it-helpdesk/2024-05-02.json",
        "t18_redacted",
        False,
        r"""
        [
          {
            "type": "message",
            "user_name": "m.okafor",
            "text": "what's the password for the svc_instr share account?",
            "ts": "1714658810.002100"
          },
          {
            "type": "message",
            "user_name": "raj.tan",
            "text": "{V}",
            "subtype": "dlp_redacted",
            "ts": "1714658861.002399"
          },
          {
            "type": "message",
            "user_name": "slackbot",
            "text": "A message was hidden by your organisation's data loss prevention policy: {V2}",
            "ts": "1714658861.002400"
          }
        ]
        """,
    ),
    _t(
        "docs/vendor/twilio-setup.md",
        "t18_doc_placeholder",
        False,
        r"""
        # Twilio setup for the notify service

        From the Twilio Console copy the Account SID and Auth Token (Account > API keys & tokens):

        ```bash
        export TWILIO_ACCOUNT_SID=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX
        export TWILIO_AUTH_TOKEN={V}
        curl -X POST "https://api.twilio.com/2010-04-01/Accounts/$TWILIO_ACCOUNT_SID/Messages.json" \
          -u "$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN" \
          --data-urlencode "To=+15035550100" --data-urlencode "MessagingServiceSid=MG..." \
          --data-urlencode "Body=test"
        ```
        """,
    ),
    _t(
        "docs/security/password-policy.md",
        "t18_pw_policy",
        False,
        r"""
        # BWCL password policy (IT-SEC-004, rev. 7)

        * Workforce accounts (Okta): {V}, no reuse of the last 12, MFA required.
        * Service accounts: 32 random characters, stored in Key Vault, rotated yearly.
        * Patient portal: validated client side with `{V2}`.
        * Instrument PCs: local accounts are exempt from expiry (vendor requirement), see the exception register.
        """,
    ),
    _t(
        "docs/api/fhir-auth.md",
        "t18_jwt_example",
        False,
        r"""
        # Calling the BWCL FHIR API

        Get a token from Okta with client credentials, then send it as a bearer token:

        ```http
        GET /fhir/Observation?subject=Patient/123&category=laboratory HTTP/1.1
        Host: fhir.corp.bwcl.org
        Authorization: Bearer {V}
        Accept: application/fhir+json
        ```

        The token is a JWT; paste it into a JWT debugger to check `scp` contains `system/Observation.read`.
        """,
    ),
    _t(
        "docs/security/pgp/security-team.asc",
        "t18_pgp_public",
        False,
        r"""
        Brightwater Clinical Labs security team - use for vulnerability reports to security@brightwaterlabs.com
        {V}
        """,
    ),
    _t(
        "docs/analytics/ordering-providers.csv",
        "t18_npi",
        False,
        r"""
        npi,last_name,first_name,practice,orders_2023
        {V},Welby,Marcus,Riverside Family Medicine,4120
        {V2},Quinn,Michaela,Cascade Women's Health,2875
        {V3},Ramos,Elena,Brightwater Occupational Health,1932
        """,
    ),
    _t(
        "hpc/docs/cluster-access.md",
        "t18_ssh_pub",
        False,
        r"""
        # Getting access to bwcl-hpc

        1. Open a ticket with your **public** key (never the private one). Example of what to paste:

           ```
           {V}
           ```

        2. Research IT adds it to LDAP (`sshPublicKey`), then you can `ssh hpc-login01.bwcl.org`.
        3. Keys we have on file for the admins:

           ```
           {V2}
           ```
        """,
    ),
    _t(
        "services/lims-sync/tests/conftest.py",
        "t18_fake_env_line",
        False,
        r"""
        import pytest


        @pytest.fixture(autouse=True)
        def fake_credentials(monkeypatch):
            # No test may reach a real service: every client gets an obviously fake credential.
            {V}
            {V2}
            {V3}
            monkeypatch.setenv("BWCL_ENV", "test")
        """,
    ),
]
