"""Held-out part 8: the repositories of a regulated enterprise.

A bank, its insurer arm and a hospital IT department that shares vendors with them keep
Java EE / Spring applications on WebLogic, WebSphere, JBoss and Tomcat (server.xml,
context.xml, standalone.xml, jndi.properties), .NET Framework web.config/app.config and
machine.config, Oracle/DB2/SQL Server/Sybase scripts and tnsnames, mainframe-adjacent files
(JCL, REXX, FTP scripts to z/OS), SAP connector configs, Windows admin scripts (PowerShell,
batch, .reg, scheduled-task XML, unattend.xml), LDAP/Active Directory bind configs, Mirth
HL7/FHIR integration engine configs, vendor appliance configs (F5, Cisco IOS, Fortinet,
Palo Alto) pasted into repos, Jenkins/Bamboo/TeamCity, Ansible/Puppet/Chef, and runbooks
in Markdown, AsciiDoc and Confluence-export HTML. Look-alikes are the same files carrying
WebLogic ``{AES}`` blobs, JBoss vault and CyberArk references, DPAPI and IIS-encrypted
values, Oracle/SQL Server verifiers, Cisco type 5 hashes, SIDs, thumbprints and HL7 ids.
Written blind (see the brief); never edited to fit scanner results.
"""

from __future__ import annotations

import base64
import string

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
B64 = string.ascii_letters + string.digits + "+/"
CRYPT = string.ascii_letters + string.digits + "./"
CISCO_XLAT = "dsfd;kfoA,.iyewrkldJKDHSUBsgvca69834ncxv9873254k;fg87"


class Heldout8Values(evalset.Values):
    """Value generators of the regulated-enterprise part; ``h8_`` names only."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "tamarack",
            "heliotrope",
            "kittiwake",
            "capstan",
            "sorrel",
            "bollard",
            "gannet",
            "quillon",
            "marram",
        ]
        self.users = [
            "svc_wlsadm",
            "ora_batch",
            "mirth_svc",
            "sapjco",
            "ldapbind",
            "db2inst1",
            "claimsapp",
            "hl7feed",
        ]

    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n)).decode()

    # -- credentials ----------------------------------------------------------------
    def h8_password(self) -> str:
        shape = self.rng.randrange(5)
        word = self.pick(self.words)
        if shape == 0:
            return (
                word.capitalize() + str(self.rng.randrange(1990, 2026)) + self.pick(list("!#$%@"))
            )
        if shape == 1:
            return self.s(
                self.rng.randrange(12, 20), string.ascii_letters + string.digits + "!#%^*-_"
            )
        if shape == 2:
            return (
                self.pick(["Q", "Z", "K"])
                + self.s(3, string.digits)
                + word
                + self.pick(["!", "#", "$"])
            )
        if shape == 3:
            return (
                word[:4].upper()
                + self.s(6, string.ascii_lowercase + string.digits)
                + "_"
                + self.s(2, string.digits)
            )
        return self.s(16, string.ascii_letters + string.digits)

    def h8_weak(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            season = self.pick(["Winter", "Spring", "Summer", "Autumn", "Welcome"])
            return season + str(self.rng.randrange(2018, 2026)) + self.pick(["", "!", "#"])
        if shape == 1:
            return self.pick(self.words) + self.pick(["1", "123", "01", "!"])
        if shape == 2:
            return self.pick(["Bank", "Claims", "Mirth", "Oracle", "Hosp"]) + self.s(
                3, string.digits
            )
        return self.pick(self.words).capitalize() + self.pick(["#1", "@2", "99"])

    def h8_vendor_default(self) -> str:
        return self.pick(
            [
                "welcome1",
                "weblogic1",
                "Welcome1",
                "tomcat",
                "s3cret",
                "manager",
                "admin123",
                "Passw0rd",
                "db2admin",
                "admin",
                "cisco",
                "sapadmin",
            ]
        ) + self.pick(["", "", str(self.rng.randrange(1, 10))])

    def h8_zos_pw(self) -> str:
        first = self.s(1, string.ascii_uppercase)
        return first + self.s(
            self.rng.randrange(5, 8), string.ascii_uppercase + string.digits + "@#$"
        )

    def h8_netsecret(self) -> str:
        return self.pick(
            [
                self.s(self.rng.randrange(10, 18), string.ascii_letters + string.digits),
                self.pick(self.words)
                + "-"
                + self.s(4, string.digits)
                + "-"
                + self.pick(self.words),
                self.s(14, string.ascii_letters + string.digits + "!@%^&*"),
            ]
        )

    def h8_cisco7(self) -> str:
        plain = self.h8_netsecret()[:15]
        seed = self.rng.randrange(0, 16)
        out = f"{seed:02d}"
        for i, ch in enumerate(plain):
            out += f"{ord(ch) ^ ord(CISCO_XLAT[(seed + i) % len(CISCO_XLAT)]):02X}"
        return out

    def h8_was_xor(self) -> str:
        plain = self.h8_password()
        return "{xor}" + base64.b64encode(bytes(ord(c) ^ 0x5F for c in plain)).decode()

    def h8_unattend_b64(self) -> str:
        plain = self.h8_password() + "AdministratorPassword"
        return base64.b64encode(plain.encode("utf-16-le")).decode()

    def h8_machine_key(self) -> str:
        return self.s(self.rng.choice([48, 64, 128]), HEXU)

    def h8_api_key(self) -> str:
        return self.pick(
            [self.s(32, HEX), self.s(40, string.ascii_letters + string.digits), self.s(48, HEXU)]
        )

    def h8_b64_key(self) -> str:
        return self._b64(self.rng.choice([32, 48]))

    def h8_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def h8_panos_key(self) -> str:
        return "LUFRPT" + self.s(62, string.ascii_letters + string.digits + "+/") + "=="

    def h8_forti_token(self) -> str:
        return self.s(30, string.ascii_letters + string.digits)

    def h8_gpp_cpassword(self) -> str:
        return self._b64(self.rng.choice([32, 48])).rstrip("=")

    def h8_basic(self) -> str:
        return base64.b64encode(f"{self.pick(self.users)}:{self.h8_password()}".encode()).decode()

    def h8_b64_pw(self) -> str:
        return base64.b64encode(self.h8_password().encode()).decode()

    def h8_winscp(self) -> str:
        return "A35C" + self.s(self.rng.choice([44, 52, 60]), HEXU)

    def h8_rsa_key(self) -> str:
        return self.pem("RSA PRIVATE KEY", 10)

    def h8_bag_secret(self) -> str:
        return self._b64(384)

    def h8_aws_ps(self) -> str:
        return f"-AccessKey {self.aws_id()} -SecretKey {self.aws_secret()}"

    def h8_fhir_secret(self) -> str:
        return self.s(self.rng.choice([40, 48, 64]), string.ascii_letters + string.digits + "-_")

    # -- look-alikes ----------------------------------------------------------------
    def h8_wls_aes(self) -> str:
        return self.pick(["{AES}", "{AES256}"]) + self._b64(self.rng.choice([32, 48]))

    def h8_jasypt(self) -> str:
        return "ENC(" + self._b64(self.rng.choice([24, 32, 48])) + ")"

    def h8_jboss_vault(self) -> str:
        block = self.pick(["ds_OracleClaimsDS", "ds_DB2PolicyDS", "jms_MQ", "ldap_AD"])
        return "${VAULT::" + block + "::password::" + self.s(1, "123") + "}"

    def h8_cyberark_cmd(self) -> str:
        app = self.pick(["CLAIMS-BATCH", "PAS-ORA-PRD", "MIRTH-HL7", "SAP-RFC"])
        obj = self.pick(["Database-Oracle-PRDCLM", "Operating System-WinDomain-svc_sql", "AD-bind"])
        return (
            "$(/opt/CARKaim/sdk/clipasswordsdk GetPassword "
            f'-p AppDescs.AppID={app} -p Query="Safe=APP_{app};Object={obj}" -o Password)'
        )

    def h8_safe_name(self) -> str:
        return self.pick(
            [
                "APP_CLAIMS_PRD / Database-Oracle-PRDCLM-claimsapp",
                "HIS_MIRTH / Operating System-Windows-mirth_svc",
                "NET_F5 / BIGIP-admin",
                "SAP_RFC_PRD / SAP-sapjco",
            ]
        )

    def h8_placeholder(self) -> str:
        return self.pick(
            [
                "<ORACLE_PASSWORD>",
                "${jdbc.password}",
                "@@DB_PASSWORD@@",
                "CHANGE_ME",
                "********",
                "[stored in CyberArk]",
                "<ask-the-DBA>",
                "__REPLACE_AT_DEPLOY__",
                "xxxxxxxx",
            ]
        )

    def h8_octopus_ref(self) -> str:
        return self.pick(
            ["#{Claims.Db.Password}", "#{Mirth.DbPassword}", "__DbPassword__", "$(DbPassword)"]
        )

    def h8_spring_ref(self) -> str:
        return self.pick(
            [
                "${ORACLE_PWD}",
                "${vcap.services.oracle-claims.credentials.password}",
                "${cyberark.claims.password}",
                "${LDAP_BIND_PASSWORD:}",
            ]
        )

    def h8_batch_ref(self) -> str:
        return self.pick(["%ORA_PWD%", "%~1", "!SYB_PASS!", "%DB_PASSWORD%"])

    def h8_mirth_ref(self) -> str:
        return self.pick(["${DB_PASSWORD}", "${configurationMap.get('his.db.pw')}", "${HIS_PW}"])

    def h8_ansible_ref(self) -> str:
        return self.pick(
            [
                "{{ lookup('cyberarkpassword', cyberark_query).password }}",
                "{{ vault_weblogic_admin_password }}",
                "{{ lookup('hashi_vault', 'secret=kv/data/claims:db_password') }}",
            ]
        )

    def h8_dpapi(self) -> str:
        return "01000000d08c9ddf0115d1118c7a00c04fc297eb01000000" + self.s(
            self.rng.choice([280, 344]), HEX
        )

    def h8_dpapi_b64(self) -> str:
        return "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + self._b64(self.rng.choice([150, 180]))

    def h8_iis_enc(self) -> str:
        return "[enc:IISCngProvider:" + self._b64(self.rng.choice([96, 128])) + ":enc]"

    def h8_cipher_value(self) -> str:
        return self._b64(self.rng.choice([128, 256]))

    def h8_autogen(self) -> str:
        return self.pick(
            ["AutoGenerate,IsolateApps", "AutoGenerate", "AutoGenerate,IsolateByAppId"]
        )

    def h8_oracle_verifier(self) -> str:
        return "S:" + self.s(60, HEXU) + ";T:" + self.s(160, HEXU)

    def h8_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def h8_md5crypt(self) -> str:
        return f"$1${self.s(4, CRYPT)}${self.s(22, CRYPT)}"

    def h8_fortios_hash(self) -> str:
        return "SH2" + self._b64(45)

    def h8_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self._b64(self.rng.choice([36, 48, 60])) + "}"

    def h8_bamboo_enc(self) -> str:
        return "BAMSCRT@0@0@" + self._b64(self.rng.choice([24, 32]))

    def h8_tc_ref(self) -> str:
        return "credentialsJSON:" + self.request_id()

    def h8_cred_id(self) -> str:
        return self.pick([self.request_id(), "oracle-claims-prd", "f5-deployer", "tc-nexus-upload"])

    def h8_eyaml(self) -> str:
        return "ENC[PKCS7," + self._b64(self.rng.choice([180, 240])) + "]"

    def h8_chef_enc(self) -> str:
        return self._b64(self.rng.choice([48, 64]))

    def h8_maven_enc(self) -> str:
        return "{" + self._b64(self.rng.choice([32, 48])) + "}"

    def h8_ssha(self) -> str:
        return "{SSHA}" + self._b64(28)

    def h8_tomcat_digest(self) -> str:
        return f"{self.s(32, HEX)}$1000${self.s(64, HEX)}"

    def h8_sid(self) -> str:
        groups = "-".join(str(self.rng.randrange(10**8, 4 * 10**9)) for _ in range(3))
        return f"S-1-5-21-{groups}-{self.rng.randrange(1100, 9000)}"

    def h8_thumbprint(self) -> str:
        return self.s(40, HEXU)

    def h8_dn(self) -> str:
        return self.pick(
            [
                "CN=svc_wlsadm,OU=Service Accounts,OU=Claims,DC=corp,DC=bank,DC=local",
                "uid=mirth_svc,ou=apps,o=hospital",
                "CN=ldapbind,OU=ServiceAccts,DC=ins,DC=corp",
            ]
        )

    def h8_snc_name(self) -> str:
        return self.pick(
            [
                "p:CN=SAPJCO-CLAIMS, OU=SAP, O=Bank, C=DE",
                "p:CN=PRD, OU=Basis, O=InsureCo, C=DE",
                "p:CN=sapjco@CORP.BANK.LOCAL",
            ]
        )

    def h8_hl7_ctrl(self) -> str:
        return self.pick(
            [
                self.s(20, string.digits),
                "MSG" + self.s(14, string.digits),
                self.s(32, HEX),
            ]
        )

    def h8_corr_id(self) -> str:
        return self.request_id()

    def h8_build_id(self) -> str:
        return self.pick([self.s(40, HEX), self.s(12, HEX), "bld-" + self.s(24, HEX)])

    def h8_ui_text(self) -> str:
        return self.pick(
            [
                "Uw wachtwoord is verlopen. Kies een nieuw wachtwoord.",
                "Votre mot de passe a expiré",
                "Kennwort muss mindestens 12 Zeichen enthalten",
                "Password does not meet the complexity requirements",
                "Le mot de passe et la confirmation ne correspondent pas",
                "Wachtwoord onjuist",
            ]
        )

    def h8_column(self) -> str:
        return self.pick(
            [
                "PWD_LAST_CHANGED",
                "password_expiry_days",
                "PWD_HASH",
                "SECRET_QUESTION_ID",
                "pin_attempts",
            ]
        )

    def h8_pw_regex(self) -> str:
        return self.pick(
            [
                r"^(?=.*[A-Z])(?=.*[a-z])(?=.*\d)(?=.*[^\w\s]).{12,64}$",
                r"^[A-Z@#$][A-Z0-9@#$]{4,7}$",
                r"(?i)password\s*[:=]\s*\S+",
            ]
        )

    def h8_keypath(self) -> str:
        return self.pick(
            [
                "/home/ftpbatch/.ssh/id_rsa_zos",
                "C:\\keys\\zos_transfer.ppk",
                "/etc/pki/mirth/hl7-mllp.key",
                "D:\\Secure\\sftp_claims_ed25519",
            ]
        )

    def h8_alias(self) -> str:
        return self.pick(["claims-db-pw", "ldap.bind", "mq-channel-auth", "keystore-pass"])

    def h8_sensitive(self) -> str:
        return "*SENSITIVE*DATA*DELETED*"

    def h8_masked(self) -> str:
        return self.pick(["********", "&lt;see CyberArk&gt;", "(ask Service Desk)", "••••••••"])

    def h8_cisco_cert_hex(self) -> str:
        rows = []
        for _ in range(8):
            rows.append(" ".join(self.s(8, HEXU) for _ in range(8)))
        rows.append(" ".join(self.s(8, HEXU) for _ in range(3)))
        return "\n".join(rows)

    def h8_policy_text(self) -> str:
        return self.pick(["14", "at least 12", "90 days", "8 (RACF: exactly 8)"])

    def h8_csharp_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("SMTP_PASSWORD")',
                'ConfigurationManager.AppSettings["Smtp.Password"]',
                'SecretClientFactory.Get("kv-bank-prd").GetSecret("smtp-notif").Value.Value',
            ]
        )

    def h8_jcl_symbolic(self) -> str:
        return self.pick(["&SYSPW", "&VAULTPW", "&CLMPW"])

    def h8_test_hook(self) -> str:
        return self.pick(
            [
                "https://example.invalid/webhook",
                "http://localhost:9999/fake-hook",
                "<teams-webhook-url>",
            ]
        )

    def h8_guid(self) -> str:
        return self.request_id().upper()


VALUES = Heldout8Values

TEMPLATES: list[evalset.Template] = [
    (
        "claims-domain/servers/AdminServer/security/boot.properties",
        r"""# WebLogic boot identity for AdminServer (claims-prd domain)
# regenerated by wlst after the 2023 rotation; do not commit the encrypted copy
username=weblogic
password={V}
""",
        "h8_vendor_default",
        True,
    ),
    (
        "policy-domain/servers/ManagedServer_1/security/boot.properties",
        r"""#Tue Mar 12 02:14:55 CET 2024
password={V}
username={V2}
""",
        "h8_wls_aes",
        False,
    ),
    (
        "policy-domain/config/config.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<domain xmlns="http://xmlns.oracle.com/weblogic/domain">
  <name>policy_domain</name>
  <domain-version>14.1.1.0.0</domain-version>
  <security-configuration>
    <name>policy_domain</name>
    <credential-encrypted>{V}</credential-encrypted>
    <node-manager-username>nm_admin</node-manager-username>
    <node-manager-password-encrypted>{V2}</node-manager-password-encrypted>
  </security-configuration>
  <server>
    <name>AdminServer</name>
    <listen-address>wlsadm01.ins.corp</listen-address>
  </server>
</domain>
""",
        "h8_wls_aes",
        False,
    ),
    (
        "wlst/create_claims_ds.py",
        r"""# WLST offline/online script - creates the Claims Oracle datasource
import sys

connect('weblogic', '{V}', 't3://wlsadm01.bank.corp:7001')
edit()
startEdit()

cd('/')
ds = cmo.createJDBCSystemResource('ClaimsDS')
res = ds.getJDBCResource()
res.setName('ClaimsDS')
cd('/JDBCSystemResources/ClaimsDS/JDBCResource/ClaimsDS/JDBCDriverParams/ClaimsDS')
cmo.setUrl('jdbc:oracle:thin:@//oraclm-scan.bank.corp:1521/PRDCLM')
cmo.setDriverName('oracle.jdbc.OracleDriver')
set('PasswordEncrypted', '{V2}')
cd('Properties/ClaimsDS')
cmo.createProperty('user').setValue('claimsapp')

save()
activate()
disconnect()
""",
        "h8_password",
        True,
    ),
    (
        "tomcat/conf/Catalina/localhost/claims-portal.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<Context path="/claims-portal" reloadable="false">
    <Resource name="jdbc/ClaimsDB"
              auth="Container"
              type="javax.sql.DataSource"
              driverClassName="oracle.jdbc.OracleDriver"
              url="jdbc:oracle:thin:@oraclm01:1521:CLMTST"
              username="claims_ro"
              password="{V}"
              maxTotal="20"
              maxIdle="5"
              validationQuery="select 1 from dual"/>
</Context>
""",
        "h8_password",
        True,
    ),
    (
        "tomcat/conf/context.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Global context: values come from catalina.properties, filled by Puppet -->
<Context>
    <WatchedResource>WEB-INF/web.xml</WatchedResource>
    <Resource name="jdbc/PolicyDB" auth="Container" type="javax.sql.DataSource"
              driverClassName="com.ibm.db2.jcc.DB2Driver"
              url="jdbc:db2://db2pol01:50000/POLPRD"
              username="${db2.user}"
              password="{V}"
              maxTotal="30"/>
</Context>
""",
        "h8_placeholder",
        False,
    ),
    (
        "tomcat/conf/tomcat-users.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <role rolename="manager-gui"/>
  <role rolename="manager-script"/>
  <!-- deploy user used by Bamboo -->
  <user username="deployer" password="{V}" roles="manager-script"/>
  <user username="tcadmin" password="{V2}" roles="manager-gui"/>
</tomcat-users>
""",
        "h8_weak",
        True,
    ),
    (
        "hospital/tomcat-lab/conf/tomcat-users.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<!-- digested with: digest.sh -a SHA-256 -i 1000 -s 16 -->
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <role rolename="manager-gui"/>
  <user username="labadmin" password="{V}" roles="manager-gui"/>
  <user username="lisdeploy" password="{V2}" roles="manager-script"/>
</tomcat-users>
""",
        "h8_tomcat_digest",
        False,
    ),
    (
        "tomcat/conf/server.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<Server port="8005" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="8443" protocol="org.apache.coyote.http11.Http11NioProtocol"
               maxThreads="150" SSLEnabled="true" scheme="https" secure="true">
      <SSLHostConfig>
        <Certificate certificateKeystoreFile="conf/claims-portal.p12"
                     certificateKeystorePassword="{V}"
                     type="RSA" />
      </SSLHostConfig>
    </Connector>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
""",
        "h8_password",
        True,
    ),
    (
        "his/tomcat-pacs/conf/server.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<Server port="8005" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="8443" SSLEnabled="true" scheme="https" secure="true">
      <SSLHostConfig certificateVerification="optional">
        <Certificate certificateKeystoreFile="${catalina.base}/conf/pacs.jks"
                     certificateKeystorePassword="{V}"
                     certificateKeyAlias="pacs-web" />
      </SSLHostConfig>
    </Connector>
  </Service>
</Server>
""",
        "h8_spring_ref",
        False,
    ),
    (
        "jboss/standalone/configuration/standalone.xml",
        r"""<subsystem xmlns="urn:jboss:domain:datasources:6.0">
    <datasources>
        <datasource jndi-name="java:jboss/datasources/UnderwritingDS" pool-name="UnderwritingDS">
            <connection-url>jdbc:sqlserver://sqluw01.ins.corp:1433;databaseName=UW</connection-url>
            <driver>mssql</driver>
            <security>
                <user-name>uw_app</user-name>
                <password>{V}</password>
            </security>
            <validation>
                <check-valid-connection-sql>SELECT 1</check-valid-connection-sql>
            </validation>
        </datasource>
    </datasources>
</subsystem>
""",
        "h8_password",
        True,
    ),
    (
        "jboss/domain/configuration/domain-ha.xml",
        r"""<subsystem xmlns="urn:jboss:domain:datasources:5.0">
    <datasources>
        <datasource jndi-name="java:jboss/datasources/OracleClaimsDS" pool-name="OracleClaimsDS">
            <connection-url>jdbc:oracle:thin:@oraclm-scan:1521/PRDCLM</connection-url>
            <driver>ojdbc8</driver>
            <security>
                <user-name>claimsapp</user-name>
                <password>{V}</password>
            </security>
        </datasource>
        <datasource jndi-name="java:jboss/datasources/DB2PolicyDS" pool-name="DB2PolicyDS">
            <connection-url>jdbc:db2://db2pol01:50000/POLPRD</connection-url>
            <security>
                <user-name>db2inst1</user-name>
                <password>{V2}</password>
            </security>
        </datasource>
    </datasources>
</subsystem>
""",
        "h8_jboss_vault",
        False,
    ),
    (
        "jboss/standalone/configuration/standalone-elytron.xml",
        r"""<subsystem xmlns="urn:wildfly:elytron:15.0">
    <credential-stores>
        <credential-store name="claimsCS" location="credentials/claims.cs" create="true">
            <credential-reference clear-text="{V}"/>
        </credential-store>
    </credential-stores>
    <dir-contexts>
        <dir-context name="ad-context" url="ldaps://ad01.corp.bank.local:636"
                     principal="CN=ldapbind,OU=ServiceAccts,DC=corp,DC=bank,DC=local">
            <credential-reference clear-text="{V2}"/>
        </dir-context>
    </dir-contexts>
</subsystem>
""",
        "h8_password",
        True,
    ),
    (
        "jboss/standalone/configuration/elytron-ldap.xml",
        r"""<dir-contexts>
    <dir-context name="ad-context" url="ldaps://ad01.corp.bank.local:636"
                 principal="CN=ldapbind,OU=ServiceAccts,DC=corp,DC=bank,DC=local">
        <credential-reference store="claimsCS" alias="{V}"/>
    </dir-context>
</dir-contexts>
""",
        "h8_alias",
        False,
    ),
    (
        "claims-batch/src/main/resources/jndi.properties",
        r"""java.naming.factory.initial=weblogic.jndi.WLInitialContextFactory
java.naming.provider.url=t3://wlsclm01.bank.corp:8001,wlsclm02.bank.corp:8001
java.naming.security.principal=svc_jmsclient
java.naming.security.credentials={V}
# queue used for claim intake
claims.intake.queue=jms/ClaimsIntakeQ
""",
        "h8_password",
        True,
    ),
    (
        "underwriting-mdb/src/main/resources/jndi.properties",
        r"""java.naming.factory.initial=org.wildfly.naming.client.WildFlyInitialContextFactory
java.naming.provider.url=remote+http://jbossuw01:8080
java.naming.security.principal={V}
java.naming.security.credentials=${env.UW_JMS_PASSWORD}
jboss.naming.client.ejb.context=true
""",
        "h8_dn",
        False,
    ),
    (
        "websphere/cells/bankCell01/security.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<security:Security xmi:version="2.0" xmlns:xmi="http://www.omg.org/XMI"
    xmlns:security="http://www.ibm.com/websphere/appserver/schemas/5.0/security.xmi"
    enabled="true" useLocalSecurityServer="true">
  <authDataEntries xmi:id="JAASAuthData_1" alias="bankCell01/DB2PolicyAuth"
      userId="db2inst1" password="{V}" description="DB2 policy store"/>
  <authDataEntries xmi:id="JAASAuthData_2" alias="bankCell01/MQClaimsAuth"
      userId="mqclaims" password="{V2}" description="MQ claims channel"/>
</security:Security>
""",
        "h8_was_xor",
        True,
    ),
    (
        "websphere/scripts/create_authalias.py",
        r"""# wsadmin -lang jython -f create_authalias.py
cell = AdminControl.getCell()
AdminTask.createAuthDataEntry('[-alias SAPJCoAuth -user sapjco -password {V} -description "SAP RFC"]')
AdminConfig.save()
AdminNodeManagement.syncActiveNodes()
print "auth alias created for cell " + cell
""",
        "h8_password",
        True,
    ),
    (
        "claims-api/src/main/resources/application-prod.properties",
        r"""server.port=8443
spring.application.name=claims-api
spring.datasource.url=jdbc:oracle:thin:@//oraclm-scan.bank.corp:1521/PRDCLM
spring.datasource.username=claimsapp
spring.datasource.password={V}
spring.datasource.hikari.maximum-pool-size=25
spring.jpa.hibernate.ddl-auto=validate
management.endpoints.web.exposure.include=health,info
""",
        "h8_password",
        True,
    ),
    (
        "policy-service/src/main/resources/application.yml",
        r"""spring:
  datasource:
    url: jdbc:db2://db2pol01.ins.corp:50000/POLPRD
    username: policy_app
    password: {V}
  ldap:
    urls: ldaps://ad01.ins.corp:636
    username: CN=ldapbind,OU=ServiceAccts,DC=ins,DC=corp
    password: {V2}
jasypt:
  encryptor:
    algorithm: PBEWITHHMACSHA512ANDAES_256
""",
        "h8_jasypt",
        False,
    ),
    (
        "member-portal/src/main/resources/application-uat.yml",
        r"""spring:
  security:
    user:
      name: actuator
      password: "{V}"
  ldap:
    urls: ldap://dc02.hosp.local:389
    base: dc=hosp,dc=local
    username: uid=ldapbind,ou=system
    password: '{V2}'
""",
        "h8_weak",
        True,
    ),
    (
        "claims-api/src/main/resources/application.properties",
        r"""spring.datasource.url=jdbc:oracle:thin:@//${ORA_HOST}:1521/PRDCLM
spring.datasource.username=claimsapp
spring.datasource.password={V}
spring.ldap.password={V2}
logging.level.org.springframework.security=INFO
""",
        "h8_spring_ref",
        False,
    ),
    (
        "legacy-rating/src/main/java/com/insureco/rating/dao/RatingDao.java",
        r"""package com.insureco.rating.dao;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;

public class RatingDao {

    private static final String URL = "jdbc:sybase:Tds:sybrate01:5000/RATING";

    // TODO move to JNDI once the WebSphere migration is done
    protected Connection open() throws SQLException {
        return DriverManager.getConnection(URL, "rating_app", "{V}");
    }
}
""",
        "h8_password",
        True,
    ),
    (
        "claims-web/src/main/java/com/bank/claims/web/LoginForm.java",
        r"""package com.bank.claims.web;

public final class LoginForm {
    public static final String USER_PARAM = "j_username";
    public static final String PASSWORD_PARAM = "{V}";
    public static final String PASSWORD_ERROR_KEY = "login.error.password";

    private LoginForm() {
    }
}
""",
        "form_field",
        False,
    ),
    (
        "claims-batch/src/test/java/com/bank/claims/sftp/SftpUploaderIT.java",
        r"""package com.bank.claims.sftp;

import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.TestPropertySource;

@SpringBootTest
@TestPropertySource(properties = {
        "sftp.host=sftp-uat.bank.corp",
        "sftp.user=clmxfer",
        "sftp.password={V}"
})
class SftpUploaderIT {

    @Test
    void uploadsNightlyExtract() {
    }
}
""",
        "h8_weak",
        True,
    ),
    (
        "Bank.Payments.Web/Web.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="PaymentsDb"
         connectionString="Data Source=SQLPAY01\PAYMENTS;Initial Catalog=Payments;User ID=pay_web;Password={V};MultipleActiveResultSets=True"
         providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="webpages:Version" value="3.0.0.0" />
    <add key="SwiftGateway.Url" value="https://swiftgw.bank.corp/api" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
  </system.web>
</configuration>
""",
        "h8_password",
        True,
    ),
    (
        "Bank.Payments.Web/Web.Release.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <connectionStrings>
    <add name="PaymentsDb"
         connectionString="Data Source=SQLPAY01\PAYMENTS;Initial Catalog=Payments;User ID=pay_web;Password={V};"
         xdt:Transform="SetAttributes" xdt:Locator="Match(name)" />
  </connectionStrings>
</configuration>
""",
        "h8_octopus_ref",
        False,
    ),
    (
        "Insure.Quotes.Web/Web.config",
        r"""<?xml version="1.0"?>
<configuration>
  <system.web>
    <authentication mode="Forms">
      <forms loginUrl="~/Account/Login" timeout="30" protection="All" />
    </authentication>
    <machineKey validationKey="{V}"
                decryptionKey="{V2}"
                validation="HMACSHA256" decryption="AES" />
    <sessionState mode="StateServer" stateConnectionString="tcpip=stsrv01:42424" />
  </system.web>
</configuration>
""",
        "h8_machine_key",
        True,
    ),
    (
        "Insure.Broker.Web/Web.config",
        r"""<?xml version="1.0"?>
<configuration>
  <system.web>
    <machineKey validationKey="{V}"
                decryptionKey="{V2}"
                validation="SHA1" />
    <customErrors mode="RemoteOnly" defaultRedirect="~/Error" />
  </system.web>
</configuration>
""",
        "h8_autogen",
        False,
    ),
    (
        "Bank.Statements.Web/Web.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings configProtectionProvider="RsaProtectedConfigurationProvider">
    <EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element"
      xmlns="http://www.w3.org/2001/04/xmlenc#">
      <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc" />
      <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
        <EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#">
          <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" />
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
</configuration>
""",
        "h8_cipher_value",
        False,
    ),
    (
        "Bank.Notifications.Service/App.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="Smtp.Host" value="smtp-relay.bank.corp" />
    <add key="Smtp.User" value="notif_svc@bank.corp" />
    <add key="Smtp.Password" value="{V}" />
    <add key="Smtp.EnableSsl" value="true" />
  </appSettings>
</configuration>
""",
        "h8_password",
        True,
    ),
    (
        "Insure.Claims.Gateway/App.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="FraudScore.BaseUrl" value="https://api.fraudscore.example-vendor.net/v2" />
    <add key="FraudScore.ApiKey" value="{V}" />
    <add key="FraudScore.TimeoutSeconds" value="20" />
  </appSettings>
</configuration>
""",
        "h8_api_key",
        True,
    ),
    (
        "Insure.Claims.Gateway/App.Signing.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<appSettings>
  <add key="Signing.StoreLocation" value="LocalMachine" />
  <add key="Signing.CertificateThumbprint" value="{V}" />
  <add key="Signing.FallbackThumbprint" value="{V2}" />
</appSettings>
""",
        "h8_thumbprint",
        False,
    ),
    (
        "infra/iis/legacy-2008/machine.config",
        r"""<?xml version="1.0" encoding="UTF-8" ?>
<configuration>
  <system.web>
    <processModel autoConfig="true" userName="machine" password="{V}" />
    <httpRuntime maxRequestLength="20480" />
  </system.web>
</configuration>
""",
        "h8_autogen",
        False,
    ),
    (
        "infra/iis/claims-farm/machine.config.snippet",
        r"""<!-- Claims farm nodes run ASP.NET under the domain service account (CHG0041123) -->
<system.web>
  <processModel enable="true" userName="INSCORP\svc_claimsweb" password="{V}"
                requestQueueLimit="5000" />
  <identity impersonate="true" userName="INSCORP\svc_claimsweb" password="{V}" />
</system.web>
""",
        "h8_password",
        True,
    ),
    (
        "infra/iis/applicationHost.config.fragment",
        r"""<applicationPools>
    <add name="PaymentsPool" managedRuntimeVersion="v4.0">
        <processModel identityType="SpecificUser" userName="BANKCORP\svc_payweb" password="{V}" />
    </add>
    <add name="StatementsPool" managedRuntimeVersion="v4.0">
        <processModel identityType="SpecificUser" userName="BANKCORP\svc_stmtweb" password="{V2}" />
    </add>
</applicationPools>
""",
        "h8_iis_enc",
        False,
    ),
    (
        "infra/iis/set-apppool-identity.cmd",
        r"""@echo off
rem Re-applies the app pool identity after the quarterly password change
set POOL=PaymentsPool
%windir%\system32\inetsrv\appcmd.exe set apppool /apppool.name:%POOL% /processModel.identityType:SpecificUser /processModel.userName:BANKCORP\svc_payweb /processModel.password:{V}
%windir%\system32\inetsrv\appcmd.exe recycle apppool /apppool.name:%POOL%
""",
        "h8_password",
        True,
    ),
    (
        "Bank.FileDrop/Services/ShareClient.cs",
        r"""using System.Net;

namespace Bank.FileDrop.Services
{
    public class ShareClient
    {
        private readonly NetworkCredential _credential =
            new NetworkCredential("svc_filedrop", "{V}", "BANKCORP");

        public NetworkCredential Credential => _credential;
    }
}
""",
        "h8_password",
        True,
    ),
    (
        "Bank.FileDrop/Services/SmtpSender.cs",
        r"""using System;
using System.Net;

namespace Bank.FileDrop.Services
{
    public class SmtpSender
    {
        private static readonly string Password = {V};

        public NetworkCredential Build(string user) => new NetworkCredential(user, Password);
    }
}
""",
        "h8_csharp_ref",
        False,
    ),
    (
        "Insure.Tools/NuGet.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="insureco-proget" value="https://proget.ins.corp/nuget/internal/" />
  </packageSources>
  <packageSourceCredentials>
    <insureco-proget>
      <add key="Username" value="build_nuget" />
      <add key="ClearTextPassword" value="{V}" />
    </insureco-proget>
  </packageSourceCredentials>
</configuration>
""",
        "h8_password",
        True,
    ),
    (
        "Bank.Build/NuGet.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSourceCredentials>
    <bank-artifactory>
      <add key="Username" value="svc_nuget" />
      <add key="Password" value="{V}" />
    </bank-artifactory>
  </packageSourceCredentials>
</configuration>
""",
        "h8_dpapi_b64",
        False,
    ),
    (
        "db/oracle/claims/001_create_schema_users.sql",
        r"""-- Claims schema owners, run as SYSTEM on PRDCLM
CREATE USER claims_owner IDENTIFIED BY "{V}"
  DEFAULT TABLESPACE claims_data
  QUOTA UNLIMITED ON claims_data;

CREATE USER claimsapp IDENTIFIED BY {V2}
  DEFAULT TABLESPACE claims_data;

GRANT CREATE SESSION TO claimsapp;
GRANT claims_rw_role TO claimsapp;
""",
        "h8_password",
        True,
    ),
    (
        "db/oracle/claims/refresh_from_prod.sql",
        r"""-- Restore the production verifier after the TST clone (DBA runbook 7.3)
ALTER USER claimsapp IDENTIFIED BY VALUES '{V}';
ALTER USER claims_ro IDENTIFIED BY VALUES '{V2}';
ALTER USER claimsapp ACCOUNT UNLOCK;
""",
        "h8_oracle_verifier",
        False,
    ),
    (
        "scripts/oracle/nightly_extract.sh",
        r"""#!/bin/ksh
# Nightly claims extract for the reinsurance feed
. /home/oracle/.profile
export ORACLE_SID=PRDCLM

sqlplus -s claims_batch/{V}@PRDCLM <<EOF
set pagesize 0 feedback off
@/opt/claims/sql/extract_reinsurance.sql
exit
EOF
""",
        "h8_password",
        True,
    ),
    (
        "scripts/oracle/purge_audit.sh",
        r"""#!/bin/bash
set -euo pipefail
# password comes from the CyberArk credential provider on the DB host
ORA_PW={V}
sqlplus -s "audit_purge/${ORA_PW}@PRDCLM" @/opt/dba/sql/purge_audit.sql
""",
        "h8_cyberark_cmd",
        False,
    ),
    (
        "network/oracle/tnsnames.ora",
        r"""# Claims TNS aliases - managed by DBA team
PRDCLM =
  (DESCRIPTION =
    (ADDRESS = (PROTOCOL = TCP)(HOST = oraclm-scan.bank.corp)(PORT = 1521))
    (CONNECT_DATA = (SERVER = DEDICATED)(SERVICE_NAME = prdclm.bank.corp))
  )

# reporting user for Crystal: rpt_claims / {V}
RPTCLM =
  (DESCRIPTION =
    (ADDRESS = (PROTOCOL = TCP)(HOST = oraclm-dg.bank.corp)(PORT = 1521))
    (CONNECT_DATA = (SERVICE_NAME = rptclm.bank.corp))
  )
""",
        "h8_weak",
        True,
    ),
    (
        "db/db2/policy/grant_and_connect.clp",
        r"""-- run: db2 -tvf grant_and_connect.clp
CONNECT TO POLPRD USER db2inst1 USING {V};
GRANT SELECT ON TABLE POLICY.POLICY_MASTER TO USER POLRPT;
GRANT SELECT ON TABLE POLICY.COVERAGE TO USER POLRPT;
CONNECT RESET;
""",
        "h8_password",
        True,
    ),
    (
        "db/mssql/payments/logins.sql",
        r"""USE [master];
GO
CREATE LOGIN [pay_web] WITH PASSWORD = N'{V}', DEFAULT_DATABASE = [Payments],
    CHECK_EXPIRATION = OFF, CHECK_POLICY = OFF;
GO
CREATE LOGIN [pay_report] WITH PASSWORD = N'{V2}', DEFAULT_DATABASE = [Payments];
GO
""",
        "h8_password",
        True,
    ),
    (
        "db/mssql/payments/logins_migrated.sql",
        r"""-- generated by sp_help_revlogin on SQLPAY01 (2024-02-10)
-- Login: pay_web
CREATE LOGIN [pay_web] WITH PASSWORD = {V} HASHED, SID = 0x5B8E2C1D9A47F04CB1C6E0F2A7D3B915, DEFAULT_DATABASE = [Payments], CHECK_POLICY = OFF
-- Login: pay_report
CREATE LOGIN [pay_report] WITH PASSWORD = {V2} HASHED, DEFAULT_DATABASE = [Payments]
""",
        "h8_mssql_hash",
        False,
    ),
    (
        "db/mssql/payments/deploy.cmd",
        r"""@echo off
setlocal
set SERVER=SQLPAY01\PAYMENTS
sqlcmd -S %SERVER% -U sa -P {V} -d Payments -i 010_tables.sql -b
sqlcmd -S %SERVER% -U sa -P {V} -d Payments -i 020_procs.sql -b
endlocal
""",
        "h8_weak",
        True,
    ),
    (
        "db/mssql/payments/deploy-ci.cmd",
        r"""@echo off
rem password injected by the Bamboo agent
sqlcmd -S SQLPAY02\PAYMENTS -U deploy_ci -P "{V}" -d Payments -i 010_tables.sql -b
""",
        "h8_batch_ref",
        False,
    ),
    (
        "db/sybase/rating/refresh.sh",
        r"""#!/bin/sh
# Sybase ASE rating refresh - runs from cron on sybutil01
SYBASE=/opt/sybase; export SYBASE
. $SYBASE/SYBASE.sh
isql -Usa -P{V} -SSYBRATE01 -w 200 -i /opt/rating/sql/refresh_rates.sql -o /var/log/rating/refresh.log
""",
        "h8_password",
        True,
    ),
    (
        "db/sybase/rating/add_logins.sql",
        r"""use master
go
sp_addlogin 'rating_app', '{V}', 'RATING'
go
sp_addlogin 'rating_rpt', '{V2}', 'RATING'
go
""",
        "h8_weak",
        True,
    ),
    (
        "db/mssql/security/schema_users.sql",
        r"""CREATE TABLE dbo.AppUser (
    UserId        INT IDENTITY PRIMARY KEY,
    LoginName     NVARCHAR(64) NOT NULL,
    {V}   VARBINARY(64) NULL,
    PwdSalt       VARBINARY(16) NULL
);
""",
        "h8_column",
        False,
    ),
    (
        "mainframe/jcl/CLMB010.jcl",
        r"""//CLMB010  JOB (CLM,0042),'NIGHTLY CLAIMS',CLASS=A,MSGCLASS=X,
//             NOTIFY=&SYSUID,USER=CLMBATCH,PASSWORD={V}
//*--------------------------------------------------------------*
//* UNLOAD CLAIMS MASTER FOR REINSURANCE FEED                     *
//*--------------------------------------------------------------*
//STEP010  EXEC PGM=IKJEFT01
//SYSTSPRT DD SYSOUT=*
//SYSTSIN  DD *
  DSN SYSTEM(DB2P)
  RUN PROGRAM(CLMUNLD) PLAN(CLMUNLD)
  END
/*
""",
        "h8_zos_pw",
        True,
    ),
    (
        "mainframe/jcl/PROCLIB/CLMFTP.proc",
        r"""//CLMFTP   PROC PW={V},HOST='10.42.8.15'
//*  PW IS SUPPLIED BY THE SCHEDULER FROM THE VAULT AT SUBMIT TIME
//FTPSTEP  EXEC PGM=FTP,PARM='&HOST (EXIT'
//SYSPRINT DD SYSOUT=*
//OUTPUT   DD SYSOUT=*
//INPUT    DD DSN=CLM.FTP.CNTL(PUTEXTR),DISP=SHR
""",
        "h8_jcl_symbolic",
        False,
    ),
    (
        "mainframe/jcl/POLFTP01.jcl",
        r"""//POLFTP01 JOB (POL),'SEND TO DWH',CLASS=B,MSGCLASS=X
//FTPSTEP  EXEC PGM=FTP,PARM='dwhsftp.ins.corp (EXIT'
//SYSPRINT DD SYSOUT=*
//OUTPUT   DD SYSOUT=*
//INPUT    DD *
poldwh
{V}
ascii
put 'POL.DAILY.EXTRACT' /inbound/policy/daily.txt
quit
/*
""",
        "h8_password",
        True,
    ),
    (
        "mainframe/rexx/CLMXFER.rexx",
        r"""/* REXX - push claim images to the z/OS image archive */
host = 'mvs1.bank.corp'
user = 'CLMIMG'
pass = '{V}'
queue 'open' host
queue user
queue pass
queue 'binary'
queue "put /data/img/batch.zip 'CLM.IMG.BATCH'"
queue 'quit'
"ftp -n"
exit rc
""",
        "h8_zos_pw",
        True,
    ),
    (
        "mainframe/ftp/put_ledger.ftp",
        r"""open mvs1.bank.corp
user GLFEED {V}
quote site recfm=fb lrecl=200 blksize=27800
ascii
put D:\exports\ledger\gl_daily.txt 'GL.DAILY.INPUT(+1)'
bye
""",
        "h8_zos_pw",
        True,
    ),
    (
        "mainframe/ftp/run_put_ledger.cmd",
        r"""@echo off
rem Windows Task Scheduler job GL-FTP-DAILY
cd /d D:\jobs\ledger
rem the password line is written at run time, never stored
echo user GLFEED {V}> %TEMP%\gl_user.ftp
type put_ledger.ftp >> %TEMP%\gl_user.ftp
ftp -n -s:%TEMP%\gl_user.ftp > D:\logs\gl_ftp_%date:~-4%%date:~3,2%%date:~0,2%.log
if errorlevel 1 exit /b 1
""",
        "h8_batch_ref",
        False,
    ),
    (
        "mainframe/sftp/claims_to_zos.sftp",
        r"""# psftp batch file; run with: psftp -i {V} -b claims_to_zos.sftp clmxfer@mvs1.bank.corp
cd /u/clmxfer/inbound
lcd D:\exports\claims
put claims_daily.csv
quit
""",
        "h8_keypath",
        False,
    ),
    (
        "mainframe/docs/RACF-service-ids.md",
        r"""# RACF service IDs used by distributed jobs

| User ID  | Purpose                    | Password (initial)  | Owner   |
|----------|----------------------------|---------------------|---------|
| CLMBATCH | nightly claims unload      | `{V}`            | CLM-OPS |
| GLFEED   | GL inbound FTP             | `{V2}`            | FIN-OPS |

Passwords are NOINTERVAL (non-expiring) per exception EXC-2021-117.
""",
        "h8_zos_pw",
        True,
    ),
    (
        "mainframe/docs/password-rules.md",
        r"""# z/OS password rules (RACF SETROPTS)

- Length: {V}
- Mixed case is not enabled; characters allowed are A-Z, 0-9, @, # and $
- History: last 12 passwords
- Revoke after 3 invalid attempts

Service IDs must be PROTECTED; they authenticate with PassTickets only.
""",
        "h8_policy_text",
        False,
    ),
    (
        "sap/rfc/sapnwrfc.ini",
        r"""DEST=ECP_CLAIMS
ASHOST=sapecp01.bank.corp
SYSNR=00
CLIENT=100
USER=RFC_CLAIMS
PASSWD={V}
LANG=EN
TRACE=0

DEST=ECQ_CLAIMS
ASHOST=sapecq01.bank.corp
SYSNR=00
CLIENT=200
USER=RFC_CLAIMS
PASSWD={V2}
LANG=EN
""",
        "h8_password",
        True,
    ),
    (
        "sap/jco/ECP_CLAIMS.jcoDestination",
        r"""#SAP JCo destination for the claims settlement interface
jco.client.ashost=sapecp01.bank.corp
jco.client.sysnr=00
jco.client.client=100
jco.client.user=SAPJCO
jco.client.passwd={V}
jco.client.lang=en
jco.destination.pool_capacity=5
jco.destination.peak_limit=10
""",
        "h8_password",
        True,
    ),
    (
        "sap/jco/ECP_SNC.jcoDestination",
        r"""jco.client.ashost=sapecp01.bank.corp
jco.client.sysnr=00
jco.client.client=100
jco.client.snc_mode=1
jco.client.snc_qop=9
jco.client.snc_myname={V}
jco.client.snc_partnername={V2}
jco.client.snc_lib=/opt/sap/lib/libsapcrypto.so
""",
        "h8_snc_name",
        False,
    ),
    (
        "windows/scripts/Map-ClaimsShare.ps1",
        r"""# Maps the claims archive share for the OCR service
$user = 'INSCORP\svc_ocr'
$pass = ConvertTo-SecureString '{V}' -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($user, $pass)
New-PSDrive -Name K -PSProvider FileSystem -Root '\\fs02\claims-archive' -Credential $cred -Persist
""",
        "h8_password",
        True,
    ),
    (
        "windows/scripts/Start-ReportJob.ps1",
        r"""# The encrypted string was produced with ConvertFrom-SecureString as svc_report on RPT01
$encrypted = '{V}'
$secure = ConvertTo-SecureString -String $encrypted
$cred = New-Object System.Management.Automation.PSCredential('BANKCORP\svc_report', $secure)
Start-Process -FilePath 'D:\Reports\run.exe' -Credential $cred
""",
        "h8_dpapi",
        False,
    ),
    (
        "windows/scripts/Sync-S3Archive.ps1",
        r"""Import-Module AWS.Tools.S3
# archive bucket for scanned claim documents (account 4471)
Set-AWSCredential {V} -StoreAs claims-archive
Write-S3Object -BucketName ins-claims-archive -Folder D:\Scans -KeyPrefix scans/ -Recurse -ProfileName claims-archive
""",
        "h8_aws_ps",
        True,
    ),
    (
        "windows/scripts/map_drives.bat",
        r"""@echo off
net use P: \\fs01\payments {V} /user:BANKCORP\svc_payfiles /persistent:no
net use R: \\fs01\reports /persistent:no
""",
        "h8_weak",
        True,
    ),
    (
        "windows/scripts/register_tasks.cmd",
        r"""@echo off
rem registers the nightly reconciliation task on RECON01
schtasks /Create /TN "Bank\Recon\Nightly" /TR "D:\Recon\recon.exe /nightly" ^
  /SC DAILY /ST 01:30 /RU BANKCORP\svc_recon /RP {V} /RL HIGHEST /F
""",
        "h8_password",
        True,
    ),
    (
        "windows/tasks/Recon-Nightly.xml",
        r"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.4" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Author>BANKCORP\adm_jdoe</Author>
    <URI>\Bank\Recon\Nightly</URI>
  </RegistrationInfo>
  <Principals>
    <Principal id="Author">
      <UserId>{V}</UserId>
      <LogonType>Password</LogonType>
      <RunLevel>HighestAvailable</RunLevel>
    </Principal>
  </Principals>
  <Actions Context="Author">
    <Exec>
      <Command>D:\Recon\recon.exe</Command>
      <Arguments>/nightly</Arguments>
    </Exec>
  </Actions>
</Task>
""",
        "h8_sid",
        False,
    ),
    (
        "windows/registry/kiosk-autologon.reg",
        r"""Windows Registry Editor Version 5.00

; Ward kiosk auto-logon (Radiology waiting room)
[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon]
"AutoAdminLogon"="1"
"DefaultUserName"="kiosk_rad"
"DefaultDomainName"="HOSP"
"DefaultPassword"="{V}"
""",
        "h8_weak",
        True,
    ),
    (
        "windows/registry/claims-client.reg",
        r"""Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SOFTWARE\InsureCo\ClaimsClient]
"ServerUrl"="https://claims.ins.corp"
"InstallationId"="{{V}}"
"TenantId"="{{V2}}"
"UseWindowsAuth"=dword:00000001
""",
        "h8_guid",
        False,
    ),
    (
        "windows/registry/odbc-sybase-rating.reg",
        r"""Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SOFTWARE\ODBC\ODBC.INI\RATING_PRD]
"Driver"="C:\\Sybase\\DataAccess64\\ODBC\\dll\\sybdrvodb64.dll"
"Server"="sybrate01"
"Port"="5000"
"Database"="RATING"
"UserID"="rating_rpt"
"Password"="{V}"
""",
        "h8_password",
        True,
    ),
    (
        "windows/deploy/unattend.xml",
        r"""<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64"
        publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <UserAccounts>
        <AdministratorPassword>
          <Value>{V}</Value>
          <PlainText>true</PlainText>
        </AdministratorPassword>
      </UserAccounts>
      <TimeZone>W. Europe Standard Time</TimeZone>
    </component>
  </settings>
</unattend>
""",
        "h8_password",
        True,
    ),
    (
        "windows/deploy/ward-pc/autounattend.xml",
        r"""<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64">
      <UserAccounts>
        <AdministratorPassword>
          <Value>{V}</Value>
          <PlainText>false</PlainText>
        </AdministratorPassword>
      </UserAccounts>
    </component>
  </settings>
</unattend>
""",
        "h8_unattend_b64",
        True,
    ),
    (
        "windows/deploy/captured/unattend.xml",
        r"""<?xml version="1.0" encoding="utf-8"?>
<!-- copied from C:\Windows\Panther after sysprep of image W10-WARD-2309 -->
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64">
      <AutoLogon>
        <Password>
          <Value>{V}</Value>
          <PlainText>false</PlainText>
        </Password>
        <Username>wardsetup</Username>
        <Enabled>true</Enabled>
        <LogonCount>1</LogonCount>
      </AutoLogon>
    </component>
  </settings>
</unattend>
""",
        "h8_sensitive",
        False,
    ),
    (
        "windows/gpo/{31B2F340-016D-11D2-945F-00C04FB984F9}/Machine/Preferences/Groups/Groups.xml",
        r"""<?xml version="1.0" encoding="utf-8"?>
<Groups clsid="{3125E937-EB16-4b4c-9934-544FC6D24D26}">
  <User clsid="{DF5F1855-51E5-4d24-8B1A-D9BDE98BA1D1}" name="LocalSupport"
        image="2" changed="2019-06-11 08:14:02" uid="{6A1C9A2E-3B7F-4E8D-9C11-0F2D5E7B8A44}">
    <Properties action="U" newName="" fullName="Local Support" description="Desk-side support"
        cpassword="{V}" changeLogon="0" noChange="1" neverExpires="1"
        acctDisabled="0" userName="LocalSupport"/>
  </User>
</Groups>
""",
        "h8_gpp_cpassword",
        True,
    ),
    (
        "identity/sssd/sssd.conf",
        r"""[sssd]
services = nss, pam
domains = corp.bank.local

[domain/corp.bank.local]
id_provider = ldap
auth_provider = ldap
ldap_uri = ldaps://ad01.corp.bank.local, ldaps://ad02.corp.bank.local
ldap_search_base = dc=corp,dc=bank,dc=local
ldap_default_bind_dn = CN=ldapbind,OU=ServiceAccts,DC=corp,DC=bank,DC=local
ldap_default_authtok_type = password
ldap_default_authtok = {V}
ldap_tls_reqcert = demand
""",
        "h8_password",
        True,
    ),
    (
        "identity/ldif/service-accounts.ldif",
        r"""dn: uid=mirth_svc,ou=apps,o=hospital
objectClass: inetOrgPerson
uid: mirth_svc
cn: Mirth Connect service
sn: service
userPassword: {V}

dn: uid=pacs_svc,ou=apps,o=hospital
objectClass: inetOrgPerson
uid: pacs_svc
cn: PACS service
sn: service
userPassword: {V2}
""",
        "h8_ssha",
        False,
    ),
    (
        "identity/ldif/seed-test-users.ldif",
        r"""# seed for the UAT OpenLDAP (hospital portal tests)
dn: uid=portal_test1,ou=people,o=hospital-uat
objectClass: inetOrgPerson
uid: portal_test1
cn: Portal Test One
sn: One
userPassword: {V}
""",
        "h8_weak",
        True,
    ),
    (
        "identity/tools/ad_lookup.py",
        r"""from ldap3 import ALL, NTLM, Connection, Server

server = Server("ldaps://ad01.corp.bank.local", get_info=ALL, use_ssl=True)
conn = Connection(
    server,
    user="BANKCORP\\svc_adlookup",
    password="{V}",
    authentication=NTLM,
    auto_bind=True,
)
conn.search("dc=corp,dc=bank,dc=local", "(sAMAccountName=jdoe)", attributes=["mail"])
print(conn.entries)
""",
        "h8_password",
        True,
    ),
    (
        "identity/tools/ldap_bind.properties",
        r"""ldap.url=ldaps://ad01.ins.corp:636
ldap.base=DC=ins,DC=corp
ldap.bindDn={V}
ldap.bindPassword=${LDAP_BIND_PASSWORD}
ldap.userFilter=(sAMAccountName={0})
""",
        "h8_dn",
        False,
    ),
    (
        "mirth/conf/mirth.properties",
        r"""# Mirth Connect 4.4 - HIS integration node mirth01
http.port = 8080
https.port = 8443
keystore.path = ${dir.appdata}/keystore.jks
keystore.storepass = {V}
keystore.keypass = {V2}
database = postgres
database.url = jdbc:postgresql://pgmirth01.hosp.local:5432/mirthdb
database.username = mirth
database.password = {V3}
""",
        "h8_password",
        True,
    ),
    (
        "mirth/conf/mirth.properties.template",
        r"""http.port = 8080
https.port = 8443
keystore.storepass = {V}
keystore.keypass = {V}
database = postgres
database.url = jdbc:postgresql://${MIRTH_DB_HOST}:5432/mirthdb
database.username = mirth
database.password = {V2}
""",
        "h8_placeholder",
        False,
    ),
    (
        "mirth/channels/ADT_to_LIS.xml",
        r"""<channel version="4.4.0">
  <id>6f1e2a90-3c4d-4b8e-a1f7-29d5c0e8b7a3</id>
  <name>ADT_to_LIS</name>
  <destinationConnectors>
    <connector version="4.4.0">
      <name>LIS database writer</name>
      <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties">
        <driver>oracle.jdbc.OracleDriver</driver>
        <url>jdbc:oracle:thin:@lisdb01.hosp.local:1521/LISPRD</url>
        <username>lis_adt</username>
        <password>{V}</password>
        <query>INSERT INTO ADT_IN (MRN, EVT, RAW) VALUES (?, ?, ?)</query>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
        "h8_password",
        True,
    ),
    (
        "mirth/channels/ORU_to_EHR.xml",
        r"""<channel version="4.4.0">
  <name>ORU_to_EHR</name>
  <destinationConnectors>
    <connector version="4.4.0">
      <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties">
        <url>jdbc:sqlserver://ehrsql01.hosp.local:1433;databaseName=EHR</url>
        <username>${EHR_DB_USER}</username>
        <password>{V}</password>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
        "h8_mirth_ref",
        False,
    ),
    (
        "mirth/code-templates/lisLookup.js",
        r"""// Code template: look up the LIS accession for an order
function lisLookup(orderId) {
    var dbConn = DatabaseConnectionFactory.createDatabaseConnection(
        'oracle.jdbc.OracleDriver',
        'jdbc:oracle:thin:@lisdb01.hosp.local:1521/LISPRD',
        'lis_lookup',
        '{V}'
    );
    try {
        var rs = dbConn.executeCachedQuery("SELECT ACC_NO FROM ORDERS WHERE ORDER_ID = '" + orderId + "'");
        return rs.next() ? rs.getString(1) : null;
    } finally {
        dbConn.close();
    }
}
""",
        "h8_weak",
        True,
    ),
    (
        "mirth/channels/RAD_http_sender.xml",
        r"""<connector version="4.4.0">
  <name>RIS REST sender</name>
  <properties class="com.mirth.connect.connectors.http.HttpDispatcherProperties">
    <host>https://ris.hosp.local/api/orders</host>
    <method>post</method>
    <headers class="linked-hash-map">
      <entry>
        <string>Authorization</string>
        <list><string>Basic {V}</string></list>
      </entry>
    </headers>
    <contentType>application/hl7-v2</contentType>
  </properties>
</connector>
""",
        "h8_basic",
        True,
    ),
    (
        "mirth/test-messages/ADT_A01_sample.hl7",
        r"""MSH|^~\&|HIS|GENHOSP|LIS|GENHOSP|20240312101522||ADT^A01^ADT_A01|{V}|P|2.5.1
EVN|A01|20240312101500
PID|1||00482913^^^GENHOSP^MR||TESTPATIENT^ALPHA||19700101|F
PV1|1|I|W3^312^B||||1234^WARDDOC^DEMO
MSH|^~\&|HIS|GENHOSP|LIS|GENHOSP|20240312101530||ADT^A08^ADT_A01|{V2}|P|2.5.1
""",
        "h8_hl7_ctrl",
        False,
    ),
    (
        "fhir/smart-backend/client.json",
        r"""{
  "fhirBaseUrl": "https://fhir.hosp.local/R4",
  "tokenEndpoint": "https://auth.hosp.local/oauth2/token",
  "clientId": "pop-health-exporter",
  "clientSecret": "{V}",
  "scope": "system/Patient.read system/Observation.read"
}
""",
        "h8_fhir_secret",
        True,
    ),
    (
        "fhir/smart-backend/registration.json",
        r"""{
  "client_name": "pop-health-exporter",
  "client_id": "{V}",
  "token_endpoint_auth_method": "private_key_jwt",
  "jwks_uri": "https://pophealth.hosp.local/.well-known/jwks.json",
  "software_id": "{V2}"
}
""",
        "h8_corr_id",
        False,
    ),
    (
        "fhir/tests/patient-search.http",
        r"""### Search patients by MRN (UAT)
GET https://fhir-uat.hosp.local/R4/Patient?identifier=urn:oid:1.2.3.4|00482913
Accept: application/fhir+json
Authorization: Bearer {V}

###
""",
        "jwt",
        True,
    ),
    (
        "fhir/smart-backend/jwks.json",
        r"""{
  "keys": [
    {
      "kty": "RSA",
      "kid": "pophealth-2024",
      "use": "sig",
      "alg": "RS384",
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
        "mirth/tls/mllp-server.key",
        r"""{V}
""",
        "h8_rsa_key",
        True,
    ),
    (
        "mirth/tls/README.md",
        r"""# MLLP over TLS

The LIS side pins this CA; import it into `keystore.jks` as `lis-ca`:

```
{IV}
```

The private key is in the HIS key vault, never in this repo.
""",
        "certificate",
        False,
    ),
    (
        "network/f5/bigip-claims.conf",
        r"""ltm monitor http /Common/claims_health {
    adaptive disabled
    defaults-from /Common/http
    destination *:*
    interval 5
    username monitor_clm
    password {V}
    send "GET /claims/health HTTP/1.1\r\nHost: claims.bank.corp\r\nConnection: close\r\n\r\n"
    recv "UP"
    time-until-up 0
    timeout 16
}
""",
        "h8_password",
        True,
    ),
    (
        "network/f5/runbook-admin-reset.txt",
        r"""# F5 bigip-prd-01/02 - reset admin after vendor visit (INC0093321)
tmsh modify auth user admin password {V}
tmsh modify /sys db systemauth.disablerootlogin value true
tmsh save sys config
""",
        "h8_password",
        True,
    ),
    (
        "network/f5/bigip_user.conf",
        r"""auth user admin {
    description "Admin User"
    encrypted-password {V}
    partition-access {
        all-partitions {
            role admin
        }
    }
    shell tmsh
}
""",
        "sha512crypt",
        False,
    ),
    (
        "network/f5/ssl/claims-2024.key.enc",
        r"""{V}
""",
        "legacy_encrypted_key",
        False,
    ),
    (
        "network/cisco/core-sw01.cfg",
        r"""hostname core-sw01
!
service password-encryption
!
username netadmin privilege 15 password 7 {V}
username noc privilege 5 password 7 {V2}
!
line vty 0 15
 login local
 transport input ssh
!
end
""",
        "h8_cisco7",
        True,
    ),
    (
        "network/cisco/dist-rtr02.cfg",
        r"""hostname dist-rtr02
!
enable secret 5 {V}
!
username netadmin privilege 15 secret 5 {V2}
!
ip ssh version 2
!
end
""",
        "h8_md5crypt",
        False,
    ),
    (
        "network/cisco/wan-edge01.cfg",
        r"""hostname wan-edge01
!
snmp-server community {V} RO 10
snmp-server location DC1-Row4
!
tacacs server ISE01
 address ipv4 10.40.1.21
 key 0 {V2}
!
crypto isakmp policy 10
 encr aes 256
 authentication pre-share
crypto isakmp key {V3} address 198.51.100.17
!
end
""",
        "h8_netsecret",
        True,
    ),
    (
        "network/cisco/asa-hospital-vpn.cfg",
        r"""tunnel-group 203.0.113.40 type ipsec-l2l
tunnel-group 203.0.113.40 ipsec-attributes
 ikev1 pre-shared-key {V}
 ikev2 remote-authentication pre-shared-key {V}
 ikev2 local-authentication pre-shared-key {V}
""",
        "h8_netsecret",
        True,
    ),
    (
        "network/cisco/isr-branch-trustpoint.cfg",
        r"""crypto pki trustpoint BANK-ISSUING-CA
 enrollment terminal
 revocation-check none
!
crypto pki certificate chain BANK-ISSUING-CA
 certificate ca 01
  {IV}
  quit
""",
        "h8_cisco_cert_hex",
        False,
    ),
    (
        "network/fortinet/fgt-hosp-edge.conf",
        r"""config vpn ipsec phase1-interface
    edit "to-bank-dc"
        set interface "wan1"
        set ike-version 2
        set peertype any
        set proposal aes256-sha256
        set remote-gw 198.51.100.22
        set psksecret {V}
    next
end
""",
        "h8_netsecret",
        True,
    ),
    (
        "network/fortinet/fgt-admins.conf",
        r"""config system admin
    edit "admin"
        set accprofile "super_admin"
        set vdom "root"
        set password ENC {V}
    next
    edit "noc_ro"
        set accprofile "noc_readonly"
        set password ENC {V2}
    next
end
""",
        "h8_fortios_hash",
        False,
    ),
    (
        "network/fortinet/backup_config.sh",
        r"""#!/bin/bash
# Pull nightly FortiGate backups into the config repo
FGT=fgt-hosp-edge.hosp.local
TOKEN="{V}"
curl -sk -H "Authorization: Bearer ${TOKEN}" \
  "https://${FGT}/api/v2/monitor/system/config/backup?scope=global" \
  -o "backups/${FGT}-$(date +%F).conf"
""",
        "h8_forti_token",
        True,
    ),
    (
        "network/paloalto/commit_and_push.sh",
        r"""#!/bin/sh
# Panorama commit-all after rule import
PANORAMA=panorama01.bank.corp
KEY='{V}'
curl -sk "https://$PANORAMA/api/?type=commit&cmd=<commit></commit>&key=$KEY"
curl -sk "https://$PANORAMA/api/?type=commit&action=all&cmd=<commit-all></commit-all>&key=$KEY"
""",
        "h8_panos_key",
        True,
    ),
    (
        "network/paloalto/mgt-config.xml",
        r"""<mgt-config>
  <users>
    <entry name="admin">
      <phash>{V}</phash>
      <permissions><role-based><superuser>yes</superuser></role-based></permissions>
    </entry>
    <entry name="netops">
      <phash>{V2}</phash>
      <permissions><role-based><superreader>yes</superreader></role-based></permissions>
    </entry>
  </users>
</mgt-config>
""",
        "h8_md5crypt",
        False,
    ),
    (
        "ci/jenkins/Jenkinsfile",
        r"""pipeline {
    agent { label 'win-build' }
    stages {
        stage('Build') {
            steps {
                bat 'msbuild Bank.Payments.sln /p:Configuration=Release'
            }
        }
        stage('Trigger downstream') {
            steps {
                // TODO use credentials binding
                sh "curl -X POST -u svc_jenkins:{V} https://jenkins.bank.corp/job/payments-deploy/buildWithParameters?ENV=uat"
            }
        }
    }
}
""",
        "h8_jenkins_token",
        True,
    ),
    (
        "ci/jenkins/Jenkinsfile.deploy",
        r"""pipeline {
    agent any
    stages {
        stage('Deploy to WebLogic') {
            steps {
                withCredentials([usernamePassword(credentialsId: '{V}',
                                                  usernameVariable: 'WLS_USER',
                                                  passwordVariable: 'WLS_PASS')]) {
                    sh 'java weblogic.Deployer -adminurl t3://wlsadm01:7001 -username $WLS_USER -password $WLS_PASS -deploy claims.ear'
                }
            }
        }
    }
}
""",
        "h8_cred_id",
        False,
    ),
    (
        "ci/jenkins/casc/credentials.xml",
        r"""<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1311">
  <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
    <entry>
      <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
      <java.util.concurrent.CopyOnWriteArrayList>
        <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
          <scope>GLOBAL</scope>
          <id>oracle-claims-prd</id>
          <username>claimsapp</username>
          <password>{V}</password>
        </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
        <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
          <scope>GLOBAL</scope>
          <id>f5-deployer</id>
          <username>f5deploy</username>
          <password>{V2}</password>
        </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
      </java.util.concurrent.CopyOnWriteArrayList>
    </entry>
  </domainCredentialsMap>
</com.cloudbees.plugins.credentials.SystemCredentialsProvider>
""",
        "h8_jenkins_enc",
        False,
    ),
    (
        "ci/jenkins/casc/jenkins.yaml",
        r"""jenkins:
  securityRealm:
    activeDirectory:
      domains:
        - name: "corp.bank.local"
          servers: "ad01.corp.bank.local:3268"
          bindName: "CN=svc_jenkins_ad,OU=ServiceAccts,DC=corp,DC=bank,DC=local"
          bindPassword: "{V}"
credentials:
  system:
    domainCredentials:
      - credentials:
          - string:
              id: "smtp-relay-password"
              secret: "{V2}"
""",
        "h8_password",
        True,
    ),
    (
        "ci/bamboo/bamboo.cfg.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<application-configuration>
  <setupStep>complete</setupStep>
  <buildNumber>90406</buildNumber>
  <properties>
    <property name="hibernate.connection.driver_class">org.postgresql.Driver</property>
    <property name="hibernate.connection.url">jdbc:postgresql://pgbamboo01:5432/bamboo</property>
    <property name="hibernate.connection.username">bamboo</property>
    <property name="hibernate.connection.password">{V}</property>
    <property name="hibernate.dialect">org.hibernate.dialect.PostgreSQL95Dialect</property>
  </properties>
</application-configuration>
""",
        "h8_password",
        True,
    ),
    (
        "ci/bamboo/specs/src/main/java/PlanSpec.java",
        r"""import com.atlassian.bamboo.specs.api.builders.plan.Plan;
import com.atlassian.bamboo.specs.api.builders.Variable;

public class PlanSpec {
    public Plan plan() {
        return new Plan(project(), "Claims API", "CLMAPI")
                .variables(
                        new Variable("deploy.env", "uat"),
                        new Variable("nexus.password", "{V}"),
                        new Variable("sonar.token", "{V2}"));
    }
}
""",
        "h8_bamboo_enc",
        False,
    ),
    (
        "ci/teamcity/.teamcity/settings.kts",
        r"""import jetbrains.buildServer.configs.kotlin.*

version = "2023.11"

project {
    params {
        param("env.NEXUS_USER", "tc_upload")
        password("env.NEXUS_PASSWORD", "{V}")
        password("env.SONAR_TOKEN", "{V2}")
    }
    buildType(Build)
}
""",
        "h8_tc_ref",
        False,
    ),
    (
        "ci/teamcity/.teamcity/DeployUat.kts",
        r"""object DeployUat : BuildType({
    name = "Deploy UAT"
    params {
        param("env.WLS_ADMIN_URL", "t3://wlsadm-uat:7001")
        param("env.WLS_USER", "weblogic")
        param("env.WLS_PASSWORD", "{V}")
    }
    steps {
        script {
            scriptContent = "./deploy.sh claims.ear"
        }
    }
})
""",
        "h8_vendor_default",
        True,
    ),
    (
        "ci/maven/settings.xml",
        r"""<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <servers>
    <server>
      <id>bank-releases</id>
      <username>svc_maven</username>
      <password>{V}</password>
    </server>
    <server>
      <id>bank-snapshots</id>
      <username>svc_maven</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
        "h8_password",
        True,
    ),
    (
        "ci/maven/settings-secure.xml",
        r"""<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <!-- encrypted with mvn -ep; master password lives in ~/.m2/settings-security.xml -->
  <servers>
    <server>
      <id>ins-releases</id>
      <username>svc_maven_ins</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
        "h8_maven_enc",
        False,
    ),
    (
        "ansible/inventories/prod/group_vars/weblogic.yml",
        r"""---
wls_domain_name: claims_domain
wls_admin_user: weblogic
wls_admin_password: "{V}"
wls_nodemanager_password: "{V2}"
wls_java_home: /usr/java/jdk1.8.0_401
""",
        "h8_password",
        True,
    ),
    (
        "ansible/inventories/prod/group_vars/all/vault.yml",
        r"""---
vault_weblogic_admin_password: !vault |
  {IV}
vault_oracle_claims_password: !vault |
  {IV2}
""",
        "ansible_vault",
        False,
    ),
    (
        "ansible/inventories/hospital/hosts.ini",
        r"""[mirth]
mirth01.hosp.local
mirth02.hosp.local

[pacs_windows]
pacsweb01.hosp.local
pacsweb02.hosp.local

[pacs_windows:vars]
ansible_connection=winrm
ansible_winrm_transport=ntlm
ansible_user=HOSP\svc_ansible
ansible_password={V}
ansible_port=5986
""",
        "h8_password",
        True,
    ),
    (
        "ansible/roles/oracle_client/tasks/main.yml",
        r"""---
- name: Create wallet credential for the claims batch user
  ansible.builtin.command: >
    mkstore -wrl /opt/oracle/wallet -createCredential PRDCLM claims_batch "{{ claims_batch_pw }}"
  vars:
    claims_batch_pw: "{V}"
  no_log: true
""",
        "h8_ansible_ref",
        False,
    ),
    (
        "ansible/roles/mssql_logins/defaults/main.yml",
        r"""---
# defaults for UAT; prod overrides in vault
mssql_sa_password: "{V}"
mssql_logins:
  - name: pay_web
    password: "{V2}"
    default_db: Payments
""",
        "h8_weak",
        True,
    ),
    (
        "puppet/modules/claims_db/manifests/init.pp",
        r"""class claims_db (
  String $listener_port = '1521',
) {
  oracle::user { 'claims_rpt':
    ensure   => present,
    password => '{V}',
    grants   => ['CREATE SESSION'],
  }

  file { '/opt/claims/etc/db.properties':
    ensure  => file,
    content => "db.user=claims_rpt\ndb.password={V}\n",
    mode    => '0600',
  }
}
""",
        "h8_password",
        True,
    ),
    (
        "puppet/hieradata/prod/common.eyaml",
        r"""---
claims_db::listener_port: '1521'
claims_db::rpt_password: >
    {V}
mirth::db_password: {V2}
""",
        "h8_eyaml",
        False,
    ),
    (
        "puppet/modules/baseline/manifests/breakglass.pp",
        r"""class baseline::breakglass {
  user { 'bgadmin':
    ensure     => present,
    uid        => '1999',
    groups     => ['wheel'],
    password   => '{V}',
    managehome => true,
  }
}
""",
        "sha512crypt",
        False,
    ),
    (
        "chef/cookbooks/mirth/attributes/default.rb",
        r"""default['mirth']['version'] = '4.4.2'
default['mirth']['db']['host'] = 'pgmirth01.hosp.local'
default['mirth']['db']['user'] = 'mirth'
default['mirth']['db']['password'] = '{V}'
default['mirth']['admin']['password'] = '{V2}'
""",
        "h8_weak",
        True,
    ),
    (
        "chef/data_bags/mirth/prod.json",
        r"""{
  "id": "prod",
  "db_password": {
    "encrypted_data": "{V}",
    "iv": "Qm9vdHN0cmFwSVYxMjM0",
    "auth_tag": "3q2+7wAAAAAAAAAAAAAAAA==",
    "version": 3,
    "cipher": "aes-256-gcm"
  }
}
""",
        "h8_chef_enc",
        False,
    ),
    (
        "chef/.chef/encrypted_data_bag_secret",
        r"""{V}
""",
        "h8_bag_secret",
        True,
    ),
    (
        "chef/cookbooks/pacs/recipes/default.rb",
        r"""remote_file 'C:\\chef\\cache\\pacs-viewer.msi' do
  source 'https://repo.hosp.local/pacs/pacs-viewer-7.2.msi'
  checksum '{V}'
  action :create
end

windows_package 'PACS Viewer' do
  source 'C:\\chef\\cache\\pacs-viewer.msi'
end
""",
        "digest",
        False,
    ),
    (
        "docs/runbooks/claims-batch-restart.md",
        r"""# Claims batch restart (P2 runbook)

1. RDP to `clmbatch01` as the batch operator.
2. Stop the `ClaimsScheduler` service.
3. Log in to the scheduler console at https://clmbatch01:9443 with
   `batch_operator` / `{V}` and clear the stuck job.
4. Start the service and watch `D:\logs\scheduler.log`.

Escalate to CLM-OPS if the job fails twice.
""",
        "h8_weak",
        True,
    ),
    (
        "docs/runbooks/mirth-failover.md",
        r"""# Mirth failover to mirth02

* Admin console: https://mirth02.hosp.local:8443
* Credentials: CyberArk, safe `{V}`
* After failover, re-point the LIS MLLP listener in the F5 pool `pool_mllp_lis`.
""",
        "h8_safe_name",
        False,
    ),
    (
        "docs/runbooks/sap-rfc-test.adoc",
        r"""= SAP RFC connectivity test
:toc:

== Prerequisites

The RFC user `RFC_CLAIMS` must not be locked (SU01).

== Test from the integration host

[source,shell]
----
/opt/sap/nwrfcsdk/bin/startrfc -h sapecp01.bank.corp -s 00 -c 100 \
  -u RFC_CLAIMS -p {V} -F RFC_PING
----

A successful call returns no output and exit code 0.
""",
        "h8_password",
        True,
    ),
    (
        "docs/standards/password-policy.adoc",
        r"""= Service account password standard
:revnumber: 3.2

|===
|Setting |Value

|Minimum length
|{V}

|Complexity
|upper, lower, digit and symbol

|Rotation
|CyberArk CPM, every 30 days
|===
""",
        "h8_policy_text",
        False,
    ),
    (
        "docs/standards/password-validation.md",
        r"""# Password validation in the member portal

The portal validates new passwords client-side with:

```
{V}
```

and the server repeats the check in `PasswordPolicyValidator`.
""",
        "h8_pw_regex",
        False,
    ),
    (
        "docs/confluence-export/HIS-Interfaces/Lab-interface-accounts.html",
        r"""<html>
<head><title>HIS Interfaces : Lab interface accounts</title></head>
<body>
<div id="main-content" class="wiki-content group">
<p>Accounts used by the LIS interfaces (last reviewed 2023-11).</p>
<table class="confluenceTable"><tbody>
<tr><th class="confluenceTh">System</th><th class="confluenceTh">User</th><th class="confluenceTh">Password</th></tr>
<tr><td class="confluenceTd">LIS Oracle</td><td class="confluenceTd">lis_adt</td><td class="confluenceTd">{V}</td></tr>
<tr><td class="confluenceTd">RIS REST</td><td class="confluenceTd">ris_api</td><td class="confluenceTd">{V2}</td></tr>
</tbody></table>
</div>
</body>
</html>
""",
        "h8_password",
        True,
    ),
    (
        "docs/confluence-export/NET/F5-access.html",
        r"""<html>
<head><title>NET : F5 access</title></head>
<body>
<div id="main-content" class="wiki-content group">
<table class="confluenceTable"><tbody>
<tr><th class="confluenceTh">Device</th><th class="confluenceTh">User</th><th class="confluenceTh">Password</th></tr>
<tr><td class="confluenceTd">bigip-prd-01</td><td class="confluenceTd">admin</td><td class="confluenceTd">{V}</td></tr>
<tr><td class="confluenceTd">bigip-prd-02</td><td class="confluenceTd">admin</td><td class="confluenceTd">{V}</td></tr>
</tbody></table>
</div>
</body>
</html>
""",
        "h8_masked",
        False,
    ),
    (
        "docs/confluence-export/CLM/Setting-up-a-dev-workstation.html",
        r"""<html>
<head><title>CLM : Setting up a dev workstation</title></head>
<body>
<div id="main-content" class="wiki-content group">
<p>Add these lines to your <code>~/.bashrc</code> to reach the shared DEV database:</p>
<div class="code panel pdl"><div class="codeContent panelContent pdl">
<pre class="syntaxhighlighter-pre">export ORACLE_SID=DEVCLM
export CLAIMS_DB_USER=claims_dev
export CLAIMS_DB_PASSWORD={V}
</pre>
</div></div>
</div>
</body>
</html>
""",
        "h8_weak",
        True,
    ),
    (
        "docs/confluence-export/CLM/Release-notes-4.12.html",
        r"""<html>
<head><title>CLM : Release notes 4.12</title></head>
<body>
<div id="main-content" class="wiki-content group">
<ul>
<li>Build: <code>{V}</code></li>
<li>Fixed the password reset e-mail for brokers (CLM-2291)</li>
<li>Session timeout raised to 30 minutes</li>
</ul>
</div>
</body>
</html>
""",
        "h8_build_id",
        False,
    ),
    (
        "member-portal/src/main/resources/messages_nl.properties",
        r"""login.title=Inloggen
login.username=Gebruikersnaam
login.password=Wachtwoord
login.error.password={V}
login.error.locked=Uw account is geblokkeerd
""",
        "h8_ui_text",
        False,
    ),
    (
        "Insure.Quotes.Web/Resources/Strings.fr.resx",
        r"""<?xml version="1.0" encoding="utf-8"?>
<root>
  <data name="PasswordExpired" xml:space="preserve">
    <value>{V}</value>
  </data>
  <data name="PasswordMismatch" xml:space="preserve">
    <value>{V2}</value>
  </data>
</root>
""",
        "h8_ui_text",
        False,
    ),
    (
        "claims-api/logs/sample-request.log",
        r"""2024-03-12 10:15:22,481 INFO  [http-nio-8443-exec-7] c.b.c.api.ClaimsController - POST /claims correlationId={V} user=broker_4412
2024-03-12 10:15:22,903 WARN  [http-nio-8443-exec-7] c.b.c.api.AuthFilter - password expired for user=broker_4412 correlationId={V}
2024-03-12 10:15:23,117 INFO  [http-nio-8443-exec-9] c.b.c.api.ClaimsController - GET /claims/88123 correlationId={V2}
""",
        "h8_corr_id",
        False,
    ),
    (
        "claims-ear/META-INF/MANIFEST.MF",
        r"""Manifest-Version: 1.0
Implementation-Title: claims-ear
Implementation-Version: 4.12.0
Implementation-Build: {V}
Build-Jdk-Spec: 1.8
Created-By: Maven JAR Plugin 3.3.0
""",
        "git_sha",
        False,
    ),
    (
        "Insure.Quotes.Web/appsettings.Production.json",
        r"""{
  "AzureAd": {
    "Instance": "https://login.microsoftonline.com/",
    "TenantId": "b1e3c7a2-5d44-4f0e-9a61-2c8d7e9f0a13",
    "ClientId": "4f9a2c1e-7b3d-4e8a-8c5f-0d2e1a6b9c74",
    "ClientSecret": "{V}"
  },
  "Logging": { "LogLevel": { "Default": "Warning" } }
}
""",
        "azure_client_secret",
        True,
    ),
    (
        "windows/scripts/Send-RadiologyAlert.ps1",
        r"""param([string]$Message)
$hook = '{V}'
$body = @{ text = "PACS alert: $Message" } | ConvertTo-Json
Invoke-RestMethod -Uri $hook -Method Post -Body $body -ContentType 'application/json'
""",
        "teams_webhook",
        True,
    ),
    (
        "windows/scripts/Send-RadiologyAlert.Tests.ps1",
        r"""Describe 'Send-RadiologyAlert' {
    It 'posts to the configured hook' {
        Mock Invoke-RestMethod { }
        $env:PACS_ALERT_HOOK = '{V}'
        . $PSScriptRoot\Send-RadiologyAlert.ps1 -Message 'test'
        Assert-MockCalled Invoke-RestMethod -Times 1
    }
}
""",
        "h8_test_hook",
        False,
    ),
    (
        "tools/sftp/WinSCP.ini",
        r"""[Sessions\clmxfer@sftp-reins.bank.corp]
HostName=sftp-reins.bank.corp
UserName=clmxfer
Password={V}
FSProtocol=2
PingType=2
""",
        "h8_winscp",
        True,
    ),
    (
        "tools/ftp/FileZilla/sitemanager.xml",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<FileZilla3 version="3.66.1" platform="windows">
  <Servers>
    <Server>
      <Host>ftp.reinsurer-partner.com</Host>
      <Port>21</Port>
      <Protocol>4</Protocol>
      <Logontype>1</Logontype>
      <User>bank_reins</User>
      <Pass encoding="base64">{V}</Pass>
      <Name>Reinsurer drop</Name>
    </Server>
  </Servers>
</FileZilla3>
""",
        "h8_b64_pw",
        True,
    ),
    (
        "tools/tomcat/deploy-portal.sh",
        r"""#!/bin/sh
# Hot-deploy the member portal WAR to the UAT Tomcat manager
WAR=target/member-portal.war
curl --fail -u deployer:{V} -T "$WAR" \
  "http://tcuat01.hosp.local:8080/manager/text/deploy?path=/portal&update=true"
""",
        "h8_vendor_default",
        True,
    ),
    (
        "tools/ssh/authorized_keys.d/mirth_svc.pub",
        r"""{V}
""",
        "ssh_public",
        False,
    ),
    (
        "ops/env/set-batch-env.cmd",
        r"""@echo off
rem environment for the nightly Oracle exports on EXP01
set ORACLE_HOME=D:\oracle\product\19.0.0\client_1
set ORA_USER=exp_batch
set ORA_PWD={V}
set TNS_ADMIN=D:\oracle\network\admin
""",
        "h8_password",
        True,
    ),
    (
        "ops/env/set-batch-env.sample.cmd",
        r"""@echo off
rem copy to set-batch-env.cmd on the server and fill in the password
set ORACLE_HOME=D:\oracle\product\19.0.0\client_1
set ORA_USER=exp_batch
set ORA_PWD={V}
""",
        "h8_placeholder",
        False,
    ),
    (
        "ops/odbc/odbc.ini",
        r"""[DB2_POLPRD]
Driver=/opt/ibm/db2/clidriver/lib/libdb2o.so
Database=POLPRD
Hostname=db2pol01.ins.corp
Port=50000
Protocol=TCPIP
UID=polrpt
PWD={V}
""",
        "h8_password",
        True,
    ),
    (
        "ops/odbc/odbc-winauth.ini",
        r"""[SQLPAY_RPT]
Driver=ODBC Driver 17 for SQL Server
Server=SQLPAY01\PAYMENTS
Database=Payments
Trusted_Connection=Yes
; PWD is read from the environment by the report runner
PWD={V}
""",
        "h8_batch_ref",
        False,
    ),
    (
        "ops/hl7-feeds/inbound-partners.yml",
        r"""partners:
  - name: regional-lab
    mllp_host: 10.60.4.12
    mllp_port: 6661
    sftp:
      host: sftp.regional-lab.org
      user: genhosp
      password: "{V}"
  - name: imaging-center
    mllp_host: 10.60.4.20
    mllp_port: 6662
""",
        "h8_password",
        True,
    ),
    (
        "ops/hl7-feeds/partner-keys.yml",
        r"""partners:
  - name: regional-lab
    sftp:
      host: sftp.regional-lab.org
      user: genhosp
      private_key_file: {V}
      known_host_fingerprint: SHA256:4tG0m9Qd2Xc7eWq1Zb8YvN3kLp6RsHjF5aTuC0iEoMw
""",
        "h8_keypath",
        False,
    ),
    (
        "ops/aws/reins-archive.credentials",
        r"""[reins-archive]
{IV}
region = eu-central-1
""",
        "aws_ini_pair",
        True,
    ),
    (
        "payments-gateway/src/main/resources/gateway.properties",
        r"""# Card processor (acquirer) API
acquirer.base-url=https://api.acquirer-partner.com/v3
acquirer.merchant-id=BNK0042177
acquirer.api-key={V}
acquirer.hmac-secret={V2}
acquirer.timeout-ms=8000
""",
        "h8_b64_key",
        True,
    ),
    (
        "payments-gateway/src/main/resources/gateway-trace.properties",
        r"""# correlation and idempotency, see PAY-1408
acquirer.idempotency-key-prefix=PAYGW
acquirer.trace-id={V}
acquirer.cache-key={V2}
""",
        "h8_build_id",
        False,
    ),
    (
        "claims-api/src/main/resources/jwt.properties",
        r"""# HS512 signing key for internal broker tokens
claims.jwt.issuer=https://claims.ins.corp
claims.jwt.signing-key={V}
claims.jwt.ttl-minutes=20
""",
        "h8_b64_key",
        True,
    ),
    (
        "claims-api/src/main/resources/jwt-public.properties",
        r"""# verification key published by the IdP (RS256)
claims.jwt.issuer=https://idp.ins.corp
claims.jwt.jwk-kid={V}
claims.jwt.jwks-uri=https://idp.ins.corp/.well-known/jwks.json
""",
        "h8_thumbprint",
        False,
    ),
    (
        "ops/github/update-mirror.sh",
        r"""#!/bin/bash
# mirrors the vendor Mirth extensions fork into the internal GitLab
git clone --mirror https://x-access-token:{V}@github.com/hosp-it/mirth-extensions.git
cd mirth-extensions.git && git push --mirror https://gitlab.hosp.local/his/mirth-extensions.git
""",
        "github",
        True,
    ),
]
