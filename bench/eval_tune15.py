"""Blind part ``tune15``: the IT of a national telecom operator (Norvanet) and the government
tax agency (the National Revenue Authority, NRA) that outsources its hosting to it. Files are
Java middleware configs (WebLogic, WebSphere Liberty, JBoss/WildFly, Tomcat, IBM MQ, TIBCO EMS,
Oracle Service Bus), .NET configs (web.config, app.config, NuGet.config, IIS
applicationHost.config), database scripts (Oracle, DB2, SQL Server, Informix, Sybase),
mainframe and batch (JCL, REXX, Control-M, Autosys, .netrc, FTP scripts), Windows domain
artefacts (DSC, Group Policy Preferences, unattend.xml, .reg exports, scheduled tasks, net use),
network device configs (Cisco, Juniper, F5, FortiGate, Check Point, SNMP, RADIUS/TACACS+),
ERP/CRM connectors (SAP, Siebel, Oracle EBS), LDAP/AD clients, IBM/HCL tooling and runbooks
in Markdown, AsciiDoc, reStructuredText and exported HTML wiki pages. Credentials sit next to
hard look-alikes in the same files under the same key names: crypt hashes (Cisco type 5/9),
{SSHA} and Oracle verifiers, values encrypted with a domain or machine key (WebLogic {AES256},
IIS [enc:...], DPAPI, F5 $M$), placeholders, secret-store references, ids and checksums.
"""

from __future__ import annotations

import base64
import string
import textwrap

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
ALNUM = string.ascii_letters + string.digits
CRYPT = ALNUM + "./"
CISCO_XLAT = "dsfd;kfoA,.iyewrkldJKDHSUBsgvca69834ncxv9873254k;fg87"
JUNIPER9 = "QzF3n6/9CAtpu0O" + "B1IREhcSyrleKvMW8LXxsNdbg2ZTYoUkjiHmfPWaqD5G4V7J.-"


class Tune15Values(evalset.Values):
    """Value generators of the tune15 part; every name starts with ``t15_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "saltmarsh",
            "quillon",
            "tamarisk",
            "halyard",
            "ferrule",
            "gossamer",
            "corvid",
            "pennant",
            "brackish",
        ]
        self.users = [
            "wlsadmin",
            "svc_taxbatch",
            "oraetl",
            "db2inst1",
            "mqm",
            "ctmagent",
            "sapconn",
            "ldapbind",
        ]

    # -- credentials --------------------------------------------------------------------
    def t15_pw(self) -> str:
        rng = self.rng
        shape = rng.randrange(5)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(rng.randrange(2015, 2031)) + rng.choice("!#%*")
        if shape == 1:
            return self.s(rng.randrange(12, 20), ALNUM + "#%*-_.!")
        if shape == 2:
            return f"{word.upper()[:4]}_{self.s(2, string.digits)}{word[-3:]}"
        if shape == 3:
            return self.s(14, ALNUM)
        return word.replace("a", "@").replace("o", "0").capitalize() + self.s(3, string.digits)

    def t15_weak(self) -> str:
        return self.pick(
            [
                self.pick(self.words) + self.pick(["1", "123", "!", "01"]),
                "welcome1",
                "Welcome2024",
                "manager",
                "oracle",
                "Passw0rd",
                "weblogic1",
                "tomcat",
                "Nra" + str(self.rng.randrange(2019, 2027)),
                "Norvanet1!",
                "admin123",
            ]
        )

    def t15_urlpw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, string.digits)
        return self.s(self.rng.randrange(12, 20), ALNUM + "-_.")

    def t15_racf(self) -> str:
        return self.s(1, string.ascii_uppercase) + self.s(
            7, string.ascii_uppercase + "0123456789#@$"
        )

    def t15_cisco7(self) -> str:
        seed = self.rng.randrange(0, 16)
        plain = self.t15_pw()
        out = f"{seed:02d}"
        for i, ch in enumerate(plain):
            out += f"{ord(ch) ^ ord(CISCO_XLAT[(seed + i) % len(CISCO_XLAT)]):02X}"
        return out

    def t15_cpassword(self) -> str:
        raw = self.rng.randbytes(16 * self.rng.randrange(1, 4))
        return base64.b64encode(raw).decode().rstrip("=")

    def t15_juniper9(self) -> str:
        return "$9$" + self.s(self.rng.randrange(18, 40), JUNIPER9)

    def t15_xor(self) -> str:
        plain = self.t15_pw().encode()
        return "{xor}" + base64.b64encode(bytes(b ^ 0x5F for b in plain)).decode()

    def t15_community(self) -> str:
        return self.pick(
            [
                self.pick(self.words) + "-" + self.pick(["ro", "rw", "noc", "mon"]),
                self.s(16, ALNUM),
                "NVT" + self.s(6, string.digits) + self.pick(["read", "Write"]),
                "private",
            ]
        )

    def t15_sharedkey(self) -> str:
        return self.pick([self.s(24, ALNUM), self.s(18, ALNUM + "#%+="), self.t15_pw()])

    def t15_hexkey(self) -> str:
        return self.s(self.pick([40, 64, 64, 48]), HEXU if self.rng.randrange(2) else HEX)

    def t15_nuget(self) -> str:
        return "oy2" + self.s(43, string.ascii_lowercase + string.digits)

    def t15_token(self) -> str:
        return self.s(self.rng.randrange(32, 49), ALNUM)

    def t15_b64(self) -> str:
        return base64.b64encode(self.rng.randbytes(self.pick([24, 32, 48]))).decode()

    def t15_privkey(self) -> str:
        return self.pem(self.pick(["RSA PRIVATE KEY", "PRIVATE KEY"]), self.rng.randrange(8, 14))

    def t15_jwt(self) -> str:
        return self.jwt()

    def t15_basic(self) -> str:
        return self.basic()

    def t15_gitlab(self) -> str:
        return self.gitlab()

    def t15_webhook(self) -> str:
        return self.slack_webhook()

    def t15_awspair(self) -> str:
        return self.aws_ini_pair()

    # -- look-alikes ----------------------------------------------------------------------
    def t15_ph(self) -> str:
        return self.pick(
            [
                "<password>",
                "CHANGE_ME",
                "********",
                "xxxxxxxx",
                "@@SERVICE_PASSWORD@@",
                "<see CyberArk safe NRA-DBA>",
                "REPLACE_WITH_PASSWORD",
                "your_password_here",
                "__WLS_ADMIN_PASSWORD__",
                "changeme",
                "<redacted>",
                "XXXXXXXXXXXX",
            ]
        )

    def t15_ref_java(self) -> str:
        return self.pick(
            [
                "${env.EFILING_DB_PASSWORD}",
                "${VAULT::efiling::db2pw::1}",
                "${DB_PASSWORD}",
                "${sys:db.password}",
                "${jndi:java:comp/env/dbPassword}",
            ]
        )

    def t15_ref_shell(self) -> str:
        return self.pick(
            [
                "$(cat /u01/secure/sys.pwd)",
                "${ORACLE_PWD}",
                "$(vault kv get -field=password secret/nra/db2inst1)",
                "${DB2PW:?not set}",
                "$(cyberark-ccp get NRA-DBA db2inst1)",
            ]
        )

    def t15_ref_cmd(self) -> str:
        return self.pick(["%SQL_MAINT_PW%", "%MAINT_JOB_PASSWORD%", "!SQLPW!"])

    def t15_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:SVC_SHARE_PW",
                "(Get-Secret -Name SvcShare -AsPlainText)",
                "$Env:POOL_PASSWORD",
                "(Get-AutomationVariable -Name PoolPassword)",
            ]
        )

    def t15_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["RFC_PASSWORD"]',
                'os.getenv("SAP_RFC_PW")',
                'keyring.get_password("sap-prd", "RFC_BILLING")',
                "settings.SAP_PASSWORD",
            ]
        )

    def t15_ref_json(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-care-prod.vault.azure.net/secrets/jwt-key/)",
                "#{JwtSigningKey}#",
                "${JWT_SIGNING_KEY}",
                "__JwtSigningKey__",
                "%%CTM_DB_PASSWORD",
            ]
        )

    def t15_type5(self) -> str:
        return f"$1${self.s(4, CRYPT)}${self.s(22, CRYPT)}"

    def t15_type9(self) -> str:
        return f"$9${self.s(14, CRYPT)}${self.s(43, CRYPT)}"

    def t15_ssha(self) -> str:
        scheme = self.pick(["{SSHA}", "{SSHA256}", "{SSHA512}"])
        size = {"{SSHA}": 28, "{SSHA256}": 40, "{SSHA512}": 72}[scheme]
        return scheme + base64.b64encode(self.rng.randbytes(size)).decode()

    def t15_sha512crypt(self) -> str:
        return self.sha512crypt()

    def t15_oraverifier(self) -> str:
        return f"S:{self.s(60, HEXU)};T:{self.s(160, HEXU)}"

    def t15_aesenc(self) -> str:
        return self.pick(["{AES256}", "{AES}"]) + base64.b64encode(self.rng.randbytes(48)).decode()

    def t15_iisenc(self) -> str:
        body = base64.b64encode(self.rng.randbytes(72)).decode()
        return f"[enc:IISWASOnlyCngProvider:{body}:enc]"

    def t15_dpapi(self) -> str:
        return (
            "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + base64.b64encode(self.rng.randbytes(150)).decode()
        )

    def t15_f5enc(self) -> str:
        return f"$M${self.s(2, ALNUM)}${base64.b64encode(self.rng.randbytes(24)).decode()}"

    def t15_pkt(self) -> str:
        return self.s(16, HEX)

    def t15_uuid(self) -> str:
        return self.request_id()

    def t15_sha256(self) -> str:
        return self.digest()

    def t15_gitsha(self) -> str:
        return self.git_sha()

    def t15_cert(self) -> str:
        return self.certificate()

    def t15_sshpub(self) -> str:
        return self.ssh_public()

    def t15_text(self) -> str:
        return self.pick(
            [
                "Password must be 8 to 14 characters and contain a digit",
                "Your password has expired. Please contact the NRA service desk.",
                "Le mot de passe doit contenir au moins 12 caractères",
                "Wrong user ID or password",
                "Kennwort abgelaufen",
                "Enter your taxpayer PIN",
                "PASSWORD_HASH",
            ]
        )

    def t15_engineid(self) -> str:
        return "800000090300" + self.s(12, HEXU)

    def t15_jobid(self) -> str:
        return self.pick([self.s(5, "0123456789abcdefghijklmnopqrstuvwxyz"), self.s(16, HEX)])

    def t15_vault(self) -> str:
        return self.ansible_vault()

    def t15_docpw(self) -> str:
        return self.pick(self.words).capitalize() + self.s(3, string.digits)

    def t15_fingerprint(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(20))

    def t15_sizeval(self) -> str:
        return self.pick(["8", "12", "14", "90", "180", "5", "3"])


VALUES = Tune15Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = [
    # ---------------------------------------------------------------- Java middleware
    _t(
        "middleware/weblogic/taxdom/servers/AdminServer/security/boot.properties",
        "t15_weak",
        True,
        """
        # Generated for the NRA tax-filing domain, restored after the 2024-03 rebuild
        # WebLogic re-encrypts these on first start
        username=wlsadmin
        password={V}
        """,
    ),
    _t(
        "middleware/weblogic/wlst/create_datasource.py",
        "t15_pw",
        True,
        """
        # WLST: create the TAXCORE JDBC data source on cluster tax_cluster01
        connect('wlsadmin', '{V}', 't3://wlsadm01.nra.internal:7001')
        edit()
        startEdit()
        cd('/')
        ds = cmo.createJDBCSystemResource('TaxCoreDS')
        res = ds.getJDBCResource()
        res.setName('TaxCoreDS')
        cd('/JDBCSystemResources/TaxCoreDS/JDBCResource/TaxCoreDS/JDBCDriverParams/TaxCoreDS')
        cmo.setUrl('jdbc:oracle:thin:@//taxdb-scan.nra.internal:1521/TAXCORE')
        cmo.setDriverName('oracle.jdbc.OracleDriver')
        cmo.setPassword('{V2}')
        cd('Properties/TaxCoreDS')
        cmo.createProperty('user').setValue('TAXCORE_APP')
        save()
        activate()
        """,
    ),
    _t(
        "middleware/liberty/efiling/server.xml",
        "t15_xor",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <server description="eFiling portal">
            <featureManager>
                <feature>jdbc-4.2</feature>
                <feature>appSecurity-3.0</feature>
            </featureManager>
            <keyStore id="defaultKeyStore" password="{V}" />
            <dataSource id="efilingDS" jndiName="jdbc/efiling">
                <jdbcDriver libraryRef="DB2Lib" />
                <properties.db2.jcc databaseName="EFILE" serverName="db2prd03.nra.internal"
                    portNumber="50001" user="db2inst1" password="{V2}" />
            </dataSource>
        </server>
        """,
    ),
    _t(
        "middleware/liberty/portal/server.xml",
        "t15_pw",
        True,
        """
        <server>
            <basicRegistry id="basic" realm="PortalRealm">
                <user name="portaladmin" password="{V}" />
                <user name="monitor" password="{V2}" />
                <group name="admins">
                    <member name="portaladmin" />
                </group>
            </basicRegistry>
            <administrator-role>
                <group>admins</group>
            </administrator-role>
        </server>
        """,
    ),
    _t(
        "middleware/wildfly/billing/standalone.xml",
        "t15_pw",
        True,
        """
        <subsystem xmlns="urn:jboss:domain:datasources:7.0">
            <datasources>
                <datasource jndi-name="java:jboss/datasources/BillingDS" pool-name="BillingDS">
                    <connection-url>jdbc:oracle:thin:@billdb01.norvanet.net:1521/BILLPRD</connection-url>
                    <driver>ojdbc11</driver>
                    <pool>
                        <min-pool-size>10</min-pool-size>
                        <max-pool-size>80</max-pool-size>
                    </pool>
                    <security>
                        <user-name>BILL_APP</user-name>
                        <password>{V}</password>
                    </security>
                </datasource>
            </datasources>
        </subsystem>
        """,
    ),
    _t(
        "middleware/wildfly/cli/add-mq-ra.cli",
        "t15_pw",
        True,
        """
        # jboss-cli.sh --connect --file=add-mq-ra.cli
        batch
        /subsystem=resource-adapters/resource-adapter=wmq:add(archive=wmq.jmsra.rar, transaction-support=XATransaction)
        /subsystem=resource-adapters/resource-adapter=wmq/connection-definitions=TaxQCF:add(class-name=com.ibm.mq.connector.outbound.ManagedConnectionFactoryImpl, jndi-name=java:/jms/TaxQCF)
        /subsystem=resource-adapters/resource-adapter=wmq/connection-definitions=TaxQCF/config-properties=hostName:add(value=mqgw02.norvanet.net)
        /subsystem=resource-adapters/resource-adapter=wmq/connection-definitions=TaxQCF/config-properties=channel:add(value=NRA.SVRCONN)
        /subsystem=resource-adapters/resource-adapter=wmq/connection-definitions=TaxQCF/config-properties=username:add(value=mqtaxapp)
        /subsystem=resource-adapters/resource-adapter=wmq/connection-definitions=TaxQCF/config-properties=password:add(value={V})
        run-batch
        """,
    ),
    _t(
        "middleware/wildfly/bin/add-mgmt-user.sh",
        "t15_weak",
        True,
        """
        #!/bin/sh
        # one-off, run on every new host of the billing cluster
        JBOSS_HOME=/opt/wildfly
        $JBOSS_HOME/bin/add-user.sh -u jbossadm -p '{V}' -g SuperUser -e
        $JBOSS_HOME/bin/add-user.sh -a -u hawtio -p '{V2}' -g monitor
        """,
    ),
    _t(
        "middleware/tomcat/conf/tomcat-users.xml",
        "t15_weak",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
          <role rolename="manager-gui"/>
          <role rolename="manager-script"/>
          <user username="tomcat" password="{V}" roles="manager-gui"/>
          <user username="deployer" password="{V2}" roles="manager-script"/>
        </tomcat-users>
        """,
    ),
    _t(
        "middleware/tomcat/conf/Catalina/localhost/selfcare.xml",
        "t15_pw",
        True,
        """
        <Context path="/selfcare" reloadable="false">
          <Resource name="jdbc/SelfcareDB" auth="Container" type="javax.sql.DataSource"
                    driverClassName="oracle.jdbc.OracleDriver"
                    url="jdbc:oracle:thin:@crmdb02.norvanet.net:1521/CRMPRD"
                    username="SELFCARE"
                    password="{V}"
                    maxTotal="40" maxIdle="10" validationQuery="select 1 from dual"/>
        </Context>
        """,
    ),
    _t(
        "middleware/mq/qm_nra01/client/mqclient-jms.properties",
        "t15_pw",
        True,
        """
        # JMS client for QM_NRA01 (refunds flow)
        mq.qmgr=QM_NRA01
        mq.host=mqnra01.norvanet.net
        mq.port=1414
        mq.channel=REFUNDS.SVRCONN
        mq.userid=svc_refunds
        mq.password={V}
        mq.ssl.cipher=TLS_RSA_WITH_AES_256_GCM_SHA384
        """,
    ),
    _t(
        "middleware/mq/scripts/set-chlauth.mqsc",
        "t15_pw",
        True,
        """
        * runmqsc QM_BILL02 < set-chlauth.mqsc
        SET CHLAUTH('BILL.SVRCONN') TYPE(ADDRESSMAP) ADDRESS('10.42.*') USERSRC(CHANNEL)
        ALTER AUTHINFO(SYSTEM.DEFAULT.AUTHINFO.IDPWOS) AUTHTYPE(IDPWOS) CHCKCLNT(REQUIRED)
        REFRESH SECURITY TYPE(CONNAUTH)
        * test with: amqsputc BILL.IN QM_BILL02 then enter mqbill / {V}
        """,
    ),
    _t(
        "middleware/tibco/ems/factories.conf",
        "t15_pw",
        True,
        """
        [TaxQueueConnectionFactory]
          type                  = queue
          url                   = ssl://ems01.norvanet.net:7243,ssl://ems02.norvanet.net:7243
          ssl_verify_host       = enabled
          ssl_identity          = /opt/tibco/ems/certs/client.p12
          ssl_password          = {V}

        [NotifyTopicFactory]
          type                  = topic
          url                   = tcp://ems01.norvanet.net:7222
        """,
    ),
    _t(
        "middleware/tibco/ems/scripts/create-users.ems",
        "t15_pw",
        True,
        """
        # tibemsadmin -server tcp://ems01.norvanet.net:7222 -user admin -password {V} -script create-users.ems
        create user svc_notify "Notification service" password={V2}
        create user svc_taxbatch "Tax batch loader" password={V3}
        grant queue nra.refunds.in user=svc_taxbatch send,receive
        commit
        """,
    ),
    _t(
        "middleware/osb/TaxGateway/Resources/ServiceAccounts/EBS_Account.sa",
        "t15_pw",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <ser:service-account-def xmlns:ser="http://www.bea.com/wli/sb/services">
            <ser:description>Static account for the Oracle EBS AR interface</ser:description>
            <ser:static-account>
                <ser:username>OSB_EBS_INT</ser:username>
                <ser:password>{V}</ser:password>
            </ser:static-account>
        </ser:service-account-def>
        """,
    ),
    # ---------------------------------------------------------------- .NET
    _t(
        "dotnet/TaxPortal.Web/Web.config",
        "t15_pw",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <connectionStrings>
            <add name="TaxPortalDb"
                 connectionString="Data Source=SQLTAX01\\PORTAL;Initial Catalog=TaxPortal;User ID=taxportal_app;Password={V};MultipleActiveResultSets=True"
                 providerName="System.Data.SqlClient" />
            <add name="Audit" connectionString="Server=SQLTAX02;Database=Audit;Integrated Security=SSPI" providerName="System.Data.SqlClient" />
          </connectionStrings>
          <appSettings>
            <add key="webpages:Version" value="3.0.0.0" />
            <add key="SmtpHost" value="relay.nra.internal" />
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "dotnet/TaxPortal.Web/Web.Release.config",
        "t15_token",
        True,
        """
        <?xml version="1.0"?>
        <configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
          <appSettings>
            <add key="PaymentGateway.ApiKey" value="{V}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
            <add key="PaymentGateway.Url" value="https://pay.norvanet.net/api/v2" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
            <add key="SmsGateway:AuthToken" value="{V2}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "dotnet/TaxPortal.Web/machineKey.config",
        "t15_hexkey",
        True,
        """
        <!-- shared across the web farm WEBTAX01..04, keep identical -->
        <machineKey validationKey="{V}"
                    decryptionKey="{V2}"
                    validation="HMACSHA256" decryption="AES" />
        """,
    ),
    _t(
        "dotnet/RefundWorker/App.config",
        "t15_pw",
        True,
        """
        <?xml version="1.0" encoding="utf-8" ?>
        <configuration>
          <appSettings>
            <add key="QueueManager" value="QM_NRA01" />
            <add key="MqUser" value="svc_refunds" />
            <add key="MqPassword" value="{V}" />
            <add key="PollIntervalSeconds" value="15" />
          </appSettings>
          <connectionStrings>
            <add name="Refunds" connectionString="Provider=OraOLEDB.Oracle;Data Source=REFPRD;User Id=REFUND_SVC;Password={V2};" />
          </connectionStrings>
        </configuration>
        """,
    ),
    _t(
        "dotnet/NuGet.Config",
        "t15_pw",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSources>
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
            <add key="nra-internal" value="https://artifacts.nra.internal/nuget/v3/index.json" />
          </packageSources>
          <packageSourceCredentials>
            <nra-internal>
              <add key="Username" value="svc_build" />
              <add key="ClearTextPassword" value="{V}" />
            </nra-internal>
          </packageSourceCredentials>
        </configuration>
        """,
    ),
    _t(
        "dotnet/build/push-packages.cmd",
        "t15_nuget",
        True,
        """
        @echo off
        rem push the tax rules engine to nuget.org (public SDK for software vendors)
        set NUGET_KEY={V}
        dotnet pack src\\Nra.TaxRules.Sdk -c Release -o out
        dotnet nuget push out\\*.nupkg --api-key %NUGET_KEY% --source https://api.nuget.org/v3/index.json
        """,
    ),
    _t(
        "iis/applicationHost.config",
        "t15_pw",
        True,
        """
        <system.applicationHost>
            <applicationPools>
                <add name="TaxPortalPool" managedRuntimeVersion="v4.0">
                    <processModel identityType="SpecificUser" userName="NRA\\svc_taxportal" password="{V}" />
                </add>
                <add name="DefaultAppPool" />
            </applicationPools>
            <sites>
                <site name="TaxPortal" id="2">
                    <application path="/" applicationPool="TaxPortalPool">
                        <virtualDirectory path="/" physicalPath="\\\\fs01\\web\\taxportal" userName="NRA\\svc_webcontent" password="{V2}" />
                    </application>
                </site>
            </sites>
        </system.applicationHost>
        """,
    ),
    _t(
        "dotnet/CustomerCare.Api/appsettings.Production.json",
        "t15_b64",
        True,
        """
        {
          "Logging": { "LogLevel": { "Default": "Warning" } },
          "Jwt": {
            "Issuer": "https://sso.norvanet.net",
            "Audience": "customercare-api",
            "SigningKey": "{V}"
          },
          "ConnectionStrings": {
            "Crm": "Server=sqlcrm01;Database=CRM;Trusted_Connection=True"
          }
        }
        """,
    ),
    # ---------------------------------------------------------------- databases
    _t(
        "db/oracle/scripts/nightly_export.sh",
        "t15_pw",
        True,
        """
        #!/bin/ksh
        # nightly logical export of the TAXCORE schema, cron 01:30
        . /home/oracle/.profile_taxprd
        DUMPDIR=/backup/expdp/$(date +%Y%m%d)
        mkdir -p $DUMPDIR
        expdp system/{V}@TAXPRD schemas=TAXCORE directory=EXP_DIR \\
            dumpfile=taxcore_%U.dmp logfile=taxcore.log parallel=4 compression=ALL
        gzip $DUMPDIR/*.log
        """,
    ),
    _t(
        "db/oracle/rman/level0.rman.sh",
        "t15_weak",
        True,
        """
        #!/bin/bash
        export ORACLE_SID=BILLPRD
        rman target sys/{V}@BILLPRD catalog rman/{V2}@RCATDB <<EOF
        run {
          allocate channel c1 device type sbt parms 'ENV=(NSR_SERVER=nsr01)';
          backup incremental level 0 database plus archivelog delete input;
        }
        EOF
        """,
    ),
    _t(
        "db/oracle/sql/check_invalid.sql",
        "t15_pw",
        True,
        """
        -- usage: sqlplus -s /nolog @check_invalid.sql
        WHENEVER SQLERROR EXIT SQL.SQLCODE
        CONNECT TAXCORE/{V}@taxdb-scan.nra.internal:1521/TAXCORE
        SET PAGESIZE 200 LINESIZE 180
        SELECT owner, object_type, object_name
          FROM dba_objects
         WHERE status = 'INVALID'
         ORDER BY 1, 2;
        EXIT
        """,
    ),
    _t(
        "db/oracle/sql/create_users.sql",
        "t15_pw",
        True,
        """
        -- run as SYSDBA on EBSPRD after clone
        CREATE USER OSB_EBS_INT IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE USERS QUOTA 100M ON USERS;
        GRANT CREATE SESSION TO OSB_EBS_INT;
        ALTER USER APPS IDENTIFIED BY {V2};
        ALTER USER SIEBEL_RO IDENTIFIED BY "{V3}" ACCOUNT UNLOCK;
        """,
    ),
    _t(
        "db/oracle/wallet/mkwallet.sh",
        "t15_pw",
        True,
        """
        #!/bin/sh
        WALLET=/u01/app/oracle/wallet/taxapp
        orapki wallet create -wallet $WALLET -pwd {V} -auto_login
        mkstore -wrl $WALLET -createCredential TAXPRD TAXCORE_APP {V2} <<EOF
        {V}
        EOF
        """,
    ),
    _t(
        "db/db2/catalog_efile.clp",
        "t15_pw",
        True,
        """
        -- db2 -tvf catalog_efile.clp
        CATALOG TCPIP NODE EFNODE REMOTE db2prd03.nra.internal SERVER 50001;
        CATALOG DATABASE EFILE AT NODE EFNODE AUTHENTICATION SERVER_ENCRYPT;
        CONNECT TO EFILE USER db2inst1 USING {V};
        RUNSTATS ON TABLE EFILE.RETURNS WITH DISTRIBUTION AND DETAILED INDEXES ALL;
        CONNECT RESET;
        TERMINATE;
        """,
    ),
    _t(
        "db/db2/reorg_weekly.sh",
        "t15_weak",
        True,
        """
        #!/usr/bin/ksh
        # weekly reorg, owned by db2inst1
        db2 "connect to EFILE user db2admin using {V}"
        for t in RETURNS PAYMENTS ASSESSMENTS; do
            db2 "reorg table EFILE.$t inplace allow write access"
        done
        db2 terminate
        """,
    ),
    _t(
        "db/mssql/jobs/rebuild_indexes.cmd",
        "t15_pw",
        True,
        """
        @echo off
        rem SQL Agent is down on SQLTAX01, run from the jump host instead
        sqlcmd -S SQLTAX01\\PORTAL -U sa -P {V} -d TaxPortal -i rebuild_indexes.sql -o rebuild.log
        sqlcmd -S SQLTAX02 -U maint_job -P "{V2}" -Q "EXEC dbo.usp_PurgeAudit @days = 400"
        """,
    ),
    _t(
        "db/mssql/ssis/LoadRefunds.dtsConfig",
        "t15_pw",
        True,
        """
        <?xml version="1.0"?>
        <DTSConfiguration>
          <DTSConfigurationHeading>
            <DTSConfigurationFileInfo GeneratedBy="NRA\\etl_dev" GeneratedFromPackageName="LoadRefunds" />
          </DTSConfigurationHeading>
          <Configuration ConfiguredType="Property" Path="\\Package.Connections[REFPRD].Properties[ConnectionString]" ValueType="String">
            <ConfiguredValue>Data Source=REFPRD;User ID=REFUND_ETL;Password={V};Provider=OraOLEDB.Oracle.1;</ConfiguredValue>
          </Configuration>
          <Configuration ConfiguredType="Property" Path="\\Package.Connections[REFPRD].Properties[Password]" ValueType="String">
            <ConfiguredValue>{V}</ConfiguredValue>
          </Configuration>
        </DTSConfiguration>
        """,
    ),
    _t(
        "db/informix/bin/unload_cdr.sh",
        "t15_pw",
        True,
        """
        #!/bin/sh
        # unload yesterday's CDRs from the legacy mediation Informix
        INFORMIXSERVER=med_tcp; export INFORMIXSERVER
        dbaccess - - <<EOF
        CONNECT TO 'mediation@med_tcp' USER 'cdrload' USING '{V}';
        UNLOAD TO '/data/cdr/cdr_$(date +%Y%m%d).unl'
          SELECT * FROM cdr_daily WHERE call_date = TODAY - 1;
        EOF
        """,
    ),
    _t(
        "db/sybase/purge_ledger.sh",
        "t15_weak",
        True,
        """
        #!/bin/sh
        # legacy interconnect ledger, ASE 16
        isql -Usa -P{V} -SINTERCON_ASE -w 200 <<EOF
        use ledger
        go
        exec sp_purge_settled @older_than_days = 720
        go
        EOF
        """,
    ),
    # ---------------------------------------------------------------- mainframe and batch
    _t(
        "mainframe/jcl/TAXFTP01.jcl",
        "t15_racf",
        True,
        """
        //TAXFTP01 JOB (NRA,TAX),'SEND ASSESSMENTS',CLASS=A,MSGCLASS=X,
        //             NOTIFY=&SYSUID
        //* SEND DAILY ASSESSMENT FILE TO NORVANET PRINT SHOP
        //FTPSTEP  EXEC PGM=FTP,PARM='prtgw01.norvanet.net (EXIT'
        //SYSPRINT DD SYSOUT=*
        //OUTPUT   DD SYSOUT=*
        //INPUT    DD *
        NRAPRT
        {V}
        BINARY
        PUT 'NRA.TAX.ASSESS.DAILY' assess_daily.dat
        QUIT
        /*
        """,
    ),
    _t(
        "mainframe/jcl/DB2UNLD.jcl",
        "t15_racf",
        True,
        """
        //DB2UNLD  JOB (NRA),'UNLOAD RETURNS',CLASS=B,MSGCLASS=H,
        //             USER=TAXBTCH,PASSWORD={V}
        //UNLOAD   EXEC PGM=IKJEFT01,DYNAMNBR=20
        //STEPLIB  DD DISP=SHR,DSN=DSN.SDSNLOAD
        //SYSTSPRT DD SYSOUT=*
        //SYSTSIN  DD *
          DSN SYSTEM(DB2P)
          RUN PROGRAM(DSNTIAUL) PLAN(DSNTIAUL) PARMS('SQL')
          END
        /*
        """,
    ),
    _t(
        "mainframe/rexx/SENDRPT.rexx",
        "t15_racf",
        True,
        """
        /* REXX - push monthly revenue report to the reporting LPAR */
        host   = 'rptlpar.nra.internal'
        userid = 'RPTXFER'
        passwd = '{V}'
        queue userid passwd
        queue 'ASCII'
        queue "PUT 'NRA.REV.MONTHLY.RPT' revmonthly.txt"
        queue 'QUIT'
        address tso "FTP" host
        exit rc
        """,
    ),
    _t(
        "batch/ftp/.netrc",
        "t15_pw",
        True,
        """
        machine sftp.nra.internal login svc_taxbatch password {V}
        machine prtgw01.norvanet.net
            login nraprint
            password {V2}
        default login anonymous password ops@norvanet.net
        """,
    ),
    _t(
        "batch/ftp/get_bank_files.sh",
        "t15_urlpw",
        True,
        """
        #!/bin/bash
        # pull bank remittance files for the refunds reconciliation
        set -euo pipefail
        cd /data/inbound/bank
        lftp -e "mirror --only-newer /outgoing/nra . ; bye" \\
            sftp://nra_remit:{V}@sftp.centralbank-clearing.net
        curl -sS --ftp-ssl -u nra_remit2:{V2} ftp://ftps.clearing-house.net/out/ -o listing.txt
        """,
    ),
    _t(
        "batch/ftp/send_invoices.bat",
        "t15_pw",
        True,
        """
        @echo off
        rem nightly invoice push to the print vendor
        echo open prtgw01.norvanet.net> %TEMP%\\ftpcmd.txt
        echo user nrainv {V}>> %TEMP%\\ftpcmd.txt
        echo binary>> %TEMP%\\ftpcmd.txt
        echo mput D:\\invoices\\out\\*.pdf>> %TEMP%\\ftpcmd.txt
        echo quit>> %TEMP%\\ftpcmd.txt
        ftp -n -i -s:%TEMP%\\ftpcmd.txt
        del %TEMP%\\ftpcmd.txt
        """,
    ),
    _t(
        "batch/controlm/connection_profiles/TAXDB.json",
        "t15_pw",
        True,
        """
        {
          "TAXDB_CP": {
            "Type": "ConnectionProfile:Database:Oracle:ServiceName",
            "TargetAgent": "ctmagt-tax01",
            "Host": "taxdb-scan.nra.internal",
            "Port": "1521",
            "ServiceName": "TAXCORE",
            "User": "CTM_BATCH",
            "Password": "{V}"
          }
        }
        """,
    ),
    _t(
        "batch/controlm/jobs/refunds_load.json",
        "t15_pw",
        True,
        """
        {
          "NRA_REFUNDS": {
            "Type": "Folder",
            "ControlmServer": "ctmsrv01",
            "LoadRefunds": {
              "Type": "Job:Command",
              "Command": "/opt/nra/bin/load_refunds.sh -u REFUND_ETL -p '{V}' -d REFPRD",
              "RunAs": "ctmagent",
              "Host": "batch01.nra.internal"
            }
          }
        }
        """,
    ),
    _t(
        "batch/autosys/refunds.jil",
        "t15_pw",
        True,
        """
        /* ----------------- NRA_REFUNDS_DAILY ----------------- */
        insert_job: NRA_REFUNDS_DAILY   job_type: CMD
        command: /opt/nra/bin/refunds_daily.sh
        machine: batch02.nra.internal
        owner: svc_taxbatch@batch02
        date_conditions: 1
        days_of_week: mo,tu,we,th,fr
        start_times: "02:15"
        std_out_file: /var/log/autosys/refunds.out

        /* register the owner once: autosys_secure -a -u svc_taxbatch@batch02 -p {V} */
        """,
    ),
    # ---------------------------------------------------------------- Windows domain
    _t(
        "windows/gpo/{31B2F340-016D-11D2-945F-00C04FB984F9}/Machine/Preferences/Groups/Groups.xml",
        "t15_cpassword",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <Groups clsid="{3125E937-EB16-4b4c-9934-ACFC2D49ECB3}">
          <User clsid="{DF5F1855-51E5-4d24-8B1A-D9BDE98BA1D1}" name="nra_localadm" image="2" changed="2019-06-11 08:14:22" uid="{9A3E0F45-2B1C-4E55-9A0B-13D2C4E9F011}">
            <Properties action="U" newName="" fullName="NRA local admin" description="" cpassword="{V}" changeLogon="0" noChange="1" neverExpires="1" acctDisabled="0" userName="nra_localadm"/>
          </User>
        </Groups>
        """,
    ),
    _t(
        "windows/gpo/Policies/Machine/Preferences/ScheduledTasks/ScheduledTasks.xml",
        "t15_cpassword",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <ScheduledTasks clsid="{CC63F200-7309-4ba0-B154-A71CD118DBCC}">
          <Task clsid="{2DEECB1C-261F-4e13-9B21-16FB83BC03BD}" name="PurgeSpool" image="2" changed="2020-02-03 10:00:12">
            <Properties action="U" name="PurgeSpool" appName="C:\\nra\\purge.cmd" runAs="NRA\\svc_spool" cpassword="{V}" logonType="Password" />
          </Task>
        </ScheduledTasks>
        """,
    ),
    _t(
        "windows/dsc/WebFarm.ps1",
        "t15_pw",
        True,
        """
        Configuration WebFarm {
            Import-DscResource -ModuleName PSDesiredStateConfiguration, xWebAdministration
            $poolPw = ConvertTo-SecureString '{V}' -AsPlainText -Force
            $poolCred = New-Object System.Management.Automation.PSCredential ('NRA\\svc_taxportal', $poolPw)
            Node $AllNodes.NodeName {
                xWebAppPool TaxPortalPool {
                    Name         = 'TaxPortalPool'
                    IdentityType = 'SpecificUser'
                    Credential   = $poolCred
                    Ensure       = 'Present'
                }
            }
        }
        """,
    ),
    _t(
        "windows/unattend/unattend.xml",
        "t15_weak",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <unattend xmlns="urn:schemas-microsoft-com:unattend">
          <settings pass="oobeSystem">
            <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
              <UserAccounts>
                <AdministratorPassword>
                  <Value>{V}</Value>
                  <PlainText>true</PlainText>
                </AdministratorPassword>
              </UserAccounts>
              <AutoLogon>
                <Enabled>true</Enabled>
                <Username>Administrator</Username>
                <Password><Value>{V}</Value><PlainText>true</PlainText></Password>
                <LogonCount>1</LogonCount>
              </AutoLogon>
            </component>
          </settings>
        </unattend>
        """,
    ),
    _t(
        "windows/reg/kiosk-autologon.reg",
        "t15_pw",
        True,
        """
        Windows Registry Editor Version 5.00

        ; tax office queue kiosks (KIOSK-*), auto logon as local kiosk user
        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon]
        "AutoAdminLogon"="1"
        "DefaultUserName"="kiosk"
        "DefaultDomainName"="KIOSK"
        "DefaultPassword"="{V}"
        """,
    ),
    _t(
        "windows/tasks/register-tasks.cmd",
        "t15_pw",
        True,
        """
        @echo off
        schtasks /Create /TN "NRA\\ExportLedger" /TR "C:\\nra\\bin\\export_ledger.exe" /SC DAILY /ST 03:00 /RU NRA\\svc_ledger /RP {V}
        schtasks /Create /TN "NRA\\RotateLogs" /TR "C:\\nra\\bin\\rotate.cmd" /SC WEEKLY /D SUN /RU SYSTEM
        net use Z: \\\\fs02.nra.internal\\ledger {V2} /user:NRA\\svc_ledger /persistent:no
        """,
    ),
    _t(
        "windows/scripts/Map-Drives.ps1",
        "t15_weak",
        True,
        """
        # logon script for the call centre floor (Norvanet care)
        $user = 'NORVANET\\care_share'
        $secure = ConvertTo-SecureString -String "{V}" -AsPlainText -Force
        $cred = [pscredential]::new($user, $secure)
        New-PSDrive -Name K -PSProvider FileSystem -Root '\\\\carefs01\\kb' -Credential $cred -Persist
        """,
    ),
    _t(
        "windows/rdp/jump-tax.rdp",
        "t15_pw",
        True,
        """
        full address:s:jump01.nra.internal
        username:s:NRA\\ops_oncall
        domain:s:NRA
        screen mode id:i:2
        authentication level:i:2
        prompt for credentials:i:0
        redirectclipboard:i:1
        # note for the on-call rota: password is {V} (changed every quarter)
        """,
    ),
    # ---------------------------------------------------------------- network and security
    _t(
        "network/cisco/pe-nra-01/running-config.txt",
        "t15_cisco7",
        True,
        """
        hostname pe-nra-01
        !
        service password-encryption
        enable secret 9 $9$xH2dK0Lq1yT8pE$Y7uWq0i3Zr2s5VbN1mC6xA9dF4gH8jK0lP2oI7uY6tR
        !
        username noc privilege 15 password 7 {V}
        username backup privilege 5 password 7 {V2}
        !
        line vty 0 4
         login local
         transport input ssh
        """,
    ),
    _t(
        "network/cisco/ce-taxoffice-12/startup-config",
        "t15_pw",
        True,
        """
        hostname ce-taxoffice-12
        enable password {V}
        !
        interface GigabitEthernet0/0/1
         description NRA-WAN to pe-nra-01
         ip address 10.88.12.2 255.255.255.252
        !
        line con 0
         password {V2}
         login
        """,
    ),
    _t(
        "network/cisco/snmp-aaa.cfg",
        "t15_community",
        True,
        """
        ! SNMP and AAA baseline for all NRA customer edge routers
        snmp-server community {V} RO 98
        snmp-server community {V2} RW 99
        snmp-server location Norvanet NOC Building B
        snmp-server host 10.40.1.15 version 2c {V}
        access-list 98 permit 10.40.1.0 0.0.0.255
        """,
    ),
    _t(
        "network/cisco/aaa-tacacs.cfg",
        "t15_sharedkey",
        True,
        """
        aaa new-model
        tacacs server ISE-PRIMARY
         address ipv4 10.40.2.21
         key 0 {V}
        tacacs server ISE-SECONDARY
         address ipv4 10.40.2.22
         key 0 {V}
        radius server NPS-WIFI
         address ipv4 10.40.3.5 auth-port 1812 acct-port 1813
         key {V2}
        """,
    ),
    _t(
        "network/nxos/dc1-leaf-07.conf",
        "t15_pw",
        True,
        """
        hostname dc1-leaf-07
        feature tacacs+
        username admin password 0 {V} role network-admin
        username netbackup password 0 {V2} role network-operator
        tacacs-server host 10.40.2.21 key 0 {V3}
        snmp-server user nocmon network-operator auth sha {V4} priv aes-128 {V5}
        """,
    ),
    _t(
        "network/juniper/mx-core-02.set",
        "t15_juniper9",
        True,
        """
        set system host-name mx-core-02
        set system root-authentication encrypted-password "$6$Hq1w$mv1Bz0wYrxm5Ew1lm8mG9xA2k5d8Tt3sQm8zCk0Ypg1sZ8xXJ0wYw1Mjh5E6fdWm2NfA0R5B8cDz9a6UgXsoT/"
        set system radius-server 10.40.3.5 secret "{V}"
        set protocols bgp group NRA-VRF authentication-key "{V2}"
        set snmp community nocview authorization read-only
        """,
    ),
    _t(
        "network/juniper/srx-edge-setup.txt",
        "t15_pw",
        True,
        """
        # initial SRX bring-up for the new tax office VPN hub (typed at the console)
        configure
        set system root-authentication plain-text-password
        New password: {V}
        Retype new password: {V}
        set security ike policy NRA-IKE pre-shared-key ascii-text "{V2}"
        commit and-quit
        """,
    ),
    _t(
        "network/f5/bigip-nra.conf",
        "t15_pw",
        True,
        """
        ltm monitor https /Common/mon_taxportal_login {
            adaptive disabled
            defaults-from /Common/https
            destination *:*
            interval 10
            recv "Welcome"
            send "POST /login HTTP/1.1\\r\\nHost: portal.nra.gov\\r\\n\\r\\nuser=f5probe&pass={V}"
            time-until-up 0
            timeout 31
            username f5probe
            password {V}
        }
        """,
    ),
    _t(
        "network/fortigate/branch-fw-setup.conf",
        "t15_pw",
        True,
        """
        config system admin
            edit "nocadmin"
                set accprofile "super_admin"
                set password {V}
            next
        end
        config vpn ipsec phase1-interface
            edit "to-NRA-HQ"
                set interface "wan1"
                set remote-gw 203.0.113.10
                set psksecret {V2}
            next
        end
        """,
    ),
    _t(
        "network/checkpoint/gaia-bootstrap.clish",
        "t15_weak",
        True,
        """
        # Gaia clish, run once on the new cluster members cp-nra-a / cp-nra-b
        set hostname cp-nra-a
        add user opsread uid 2101 homedir /home/opsread
        set user opsread password {V}
        set user opsread shell /etc/cli.sh
        set expert-password
        {V2}
        save config
        """,
    ),
    _t(
        "network/radius/clients.conf",
        "t15_sharedkey",
        True,
        """
        client ce-taxoffices {
            ipaddr = 10.88.0.0/16
            secret = {V}
            shortname = nra-ce
            nas_type = cisco
        }
        client wlc-hq {
            ipaddr = 10.40.9.10
            secret = {V2}
        }
        """,
    ),
    _t(
        "network/tacacs/tac_plus.conf",
        "t15_sharedkey",
        True,
        """
        key = "{V}"
        accounting file = /var/log/tac_plus.acct

        user = netbackup {
            login = cleartext "{V2}"
            service = exec { priv-lvl = 5 }
        }
        """,
    ),
    # ---------------------------------------------------------------- ERP / CRM
    _t(
        "erp/sap/sapnwrfc.ini",
        "t15_pw",
        True,
        """
        DEST=NRA_ECC_PRD
        ASHOST=sapecc-prd.nra.internal
        SYSNR=00
        CLIENT=300
        USER=RFC_TAXSYNC
        PASSWD={V}
        LANG=EN
        TRACE=0
        """,
    ),
    _t(
        "erp/sap/pyrfc_sync.py",
        "t15_pw",
        True,
        """
        from pyrfc import Connection

        conn = Connection(
            ashost="sapcrm-prd.norvanet.net",
            sysnr="01",
            client="100",
            user="RFC_BILLING",
            passwd="{V}",
        )
        result = conn.call("BAPI_CUSTOMER_GETLIST", MAXROWS=50)
        print(len(result["ADDRESSDATA"]))
        """,
    ),
    _t(
        "erp/siebel/eai.cfg",
        "t15_pw",
        True,
        """
        [EAI]
        DefaultUser = SADMIN
        DefaultPassword = {V}
        EnableServiceArgTracing = FALSE

        [HTTP Services]
        secure/eai_enu = EAI Object Manager
        """,
    ),
    _t(
        "erp/siebel/srvrmgr_restart.sh",
        "t15_weak",
        True,
        """
        #!/bin/sh
        . /siebel/ses/siebsrvr/siebenv.sh
        srvrmgr /g gw01.norvanet.net:2320 /e CRM_ENT /u sadmin /p {V} /c "shutdown comp EAIObjMgr_enu"
        sleep 30
        srvrmgr /g gw01.norvanet.net:2320 /e CRM_ENT /u sadmin /p {V} /c "startup comp EAIObjMgr_enu"
        """,
    ),
    _t(
        "erp/ebs/clone/adcfgclone_apps.rsp",
        "t15_pw",
        True,
        """
        # EBS 12.2 apps tier clone, answer file for EBSTST
        s_apps_user=APPS
        s_apps_password={V}
        s_weblogic_password={V2}
        s_systemPwd={V3}
        s_dbSid=EBSTST
        s_dbhost=ebsdb-tst.nra.internal
        """,
    ),
    # ---------------------------------------------------------------- LDAP / AD
    _t(
        "ldap/sssd/sssd.conf",
        "t15_pw",
        True,
        """
        [sssd]
        services = nss, pam
        domains = nra.internal

        [domain/nra.internal]
        id_provider = ldap
        auth_provider = ldap
        ldap_uri = ldaps://dc01.nra.internal, ldaps://dc02.nra.internal
        ldap_search_base = dc=nra,dc=internal
        ldap_default_bind_dn = cn=svc_sssd,ou=Service,dc=nra,dc=internal
        ldap_default_authtok_type = password
        ldap_default_authtok = {V}
        cache_credentials = true
        """,
    ),
    _t(
        "ldap/openldap/ldap.conf",
        "t15_pw",
        True,
        """
        # /etc/openldap/ldap.conf on the billing batch hosts
        URI     ldaps://ldap.norvanet.net
        BASE    dc=norvanet,dc=net
        BINDDN  cn=billing-batch,ou=apps,dc=norvanet,dc=net
        BINDPW  {V}
        TLS_CACERT /etc/pki/tls/certs/norvanet-root.pem
        """,
    ),
    _t(
        "ldap/ldif/add_service_accounts.ldif",
        "t15_pw",
        True,
        """
        dn: cn=svc_refunds,ou=Service,dc=nra,dc=internal
        objectClass: inetOrgPerson
        cn: svc_refunds
        sn: Refunds service
        userPassword: {V}

        dn: cn=svc_notify,ou=Service,dc=nra,dc=internal
        objectClass: inetOrgPerson
        cn: svc_notify
        sn: Notification service
        userPassword: {V2}
        """,
    ),
    _t(
        "ldap/spring/application-prod.properties",
        "t15_pw",
        True,
        """
        spring.ldap.urls=ldaps://dc01.nra.internal:636
        spring.ldap.base=dc=nra,dc=internal
        spring.ldap.username=cn=svc_portal,ou=Service,dc=nra,dc=internal
        spring.ldap.password={V}
        spring.datasource.url=jdbc:oracle:thin:@//taxdb-scan.nra.internal:1521/TAXCORE
        spring.datasource.username=PORTAL_APP
        spring.datasource.password={V2}
        """,
    ),
    _t(
        "ldap/tools/disable_stale.py",
        "t15_pw",
        True,
        """
        from ldap3 import ALL, NTLM, Connection, Server

        server = Server("dc02.nra.internal", use_ssl=True, get_info=ALL)
        conn = Connection(server, user="NRA\\\\svc_accountaudit", password="{V}", authentication=NTLM)
        conn.bind()
        conn.search("ou=Staff,dc=nra,dc=internal", "(lastLogonTimestamp<=133000000000000000)")
        for entry in conn.entries:
            print(entry.entry_dn)
        """,
    ),
    _t(
        "ldap/spring/LdapConfig.java",
        "t15_pw",
        True,
        """
        package net.norvanet.care.config;

        import org.springframework.context.annotation.Bean;
        import org.springframework.context.annotation.Configuration;
        import org.springframework.ldap.core.support.LdapContextSource;

        @Configuration
        public class LdapConfig {
            @Bean
            public LdapContextSource contextSource() {
                LdapContextSource src = new LdapContextSource();
                src.setUrl("ldaps://ldap.norvanet.net:636");
                src.setBase("dc=norvanet,dc=net");
                src.setUserDn("cn=care-portal,ou=apps,dc=norvanet,dc=net");
                src.setPassword("{V}");
                return src;
            }
        }
        """,
    ),
    # ---------------------------------------------------------------- IBM / HCL tooling
    _t(
        "tooling/tivoli/itm_silent_install.txt",
        "t15_pw",
        True,
        """
        ################ ITM OS agent silent install (Linux) ################
        INSTALL_ENCRYPTION_KEY=IBMTivoliMonitoringEncryptionKey
        INSTALL_PRODUCT=lz
        CMSCONNECT=YES
        HOSTNAME=tems01.norvanet.net
        NETWORKPROTOCOL=ip.pipe
        TEMS_USER=sysadmin
        TEMS_PASSWORD={V}
        """,
    ),
    _t(
        "tooling/tsm/dsm.opt.backup.cmd",
        "t15_weak",
        True,
        """
        @echo off
        rem Spectrum Protect (TSM) client, re-register node after reinstall
        dsmc set password {V} {V2}
        dsmadmc -id=admin -password={V3} "update node SQLTAX01 forcepwreset=no"
        """,
    ),
    # ---------------------------------------------------------------- runbooks and keys
    _t(
        "docs/runbooks/taxportal-failover.md",
        "t15_pw",
        True,
        """
        # TaxPortal failover to DC2

        1. Stop the WebLogic managed servers in DC1 (`stopManagedWebLogic.sh tax_ms1`).
        2. On the DC2 admin server log in as `wlsadmin` with password `{V}`.
        3. Switch the data source to the standby:

           ```
           sqlplus sys/{V2}@TAXSTBY as sysdba
           ALTER DATABASE COMMIT TO SWITCHOVER TO PRIMARY;
           ```

        4. Start `tax_ms3` and `tax_ms4` and check `/portal/health`.
        """,
    ),
    _t(
        "docs/runbooks/mq-recovery.adoc",
        "t15_pw",
        True,
        """
        = QM_NRA01 recovery
        :toc:

        == Credentials

        [cols="1,1,2"]
        |===
        |Account |Password |Used by

        |mqm
        |{V}
        |queue manager owner on mqnra01

        |svc_refunds
        |{V2}
        |RefundWorker (.NET) and the WildFly RA
        |===

        == Steps
        . `endmqm -i QM_NRA01`
        . `strmqm QM_NRA01`
        """,
    ),
    _t(
        "docs/runbooks/db2-hadr.rst",
        "t15_weak",
        True,
        """
        DB2 HADR takeover (EFILE)
        =========================

        .. note::
           The instance owner is ``db2inst1``; its password is ``{V}``.
           TSA is not installed, takeover is manual.

        Steps
        -----

        #. Log in to ``db2prd04`` as ``db2inst1``.
        #. ``db2 takeover hadr on db EFILE by force``
        #. ``db2 connect to EFILE user db2inst1 using {V}``
        """,
    ),
    _t(
        "docs/wiki/export/Network-NOC-Access.html",
        "t15_pw",
        True,
        """
        <!DOCTYPE html>
        <html>
        <head><title>NOC - Device access</title></head>
        <body>
        <div id="main-content" class="wiki-content">
        <h2>Break-glass accounts</h2>
        <table class="confluenceTable">
        <tr><th>Device class</th><th>User</th><th>Password</th></tr>
        <tr><td>Cisco PE/CE</td><td>noc</td><td>{V}</td></tr>
        <tr><td>F5 LTM</td><td>admin</td><td>{V2}</td></tr>
        <tr><td>FortiGate branch</td><td>nocadmin</td><td>{V3}</td></tr>
        </table>
        <p>Rotate after every use and update this page.</p>
        </div>
        </body>
        </html>
        """,
    ),
    _t(
        "middleware/tomcat/conf/ssl/selfcare.key",
        "t15_privkey",
        True,
        """
        {V}
        """,
    ),
    _t(
        "network/f5/ssl/deploy-cert.yml",
        "t15_privkey",
        True,
        """
        # Ansible: push the portal.nra.gov key pair to the F5 pair
        - name: install portal key
          bigip_ssl_key:
            name: portal.nra.gov
            state: present
            content: |
              {IV}
            provider: "{{ f5_provider }}"
        """,
    ),
    _t(
        "integration/care-api/tests/fixtures/service_token.txt",
        "t15_jwt",
        True,
        """
        # long-lived token for the care-api smoke tests against PROD (issued by sso.norvanet.net)
        {V}
        """,
    ),
    _t(
        "integration/esb/postman/taxgateway.http",
        "t15_basic",
        True,
        """
        ### submit a return through the OSB proxy
        POST https://osb.nra.internal/TaxGateway/ReturnService
        Authorization: Basic {V}
        Content-Type: text/xml

        <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>
        """,
    ),
    _t(
        "ci/gitlab/trigger-deploy.sh",
        "t15_gitlab",
        True,
        """
        #!/bin/bash
        # trigger the nra-portal deploy pipeline from the change-management host
        GITLAB_TOKEN={V}
        curl --fail -X POST -H "PRIVATE-TOKEN: $GITLAB_TOKEN" \\
            "https://gitlab.norvanet.net/api/v4/projects/412/pipeline?ref=release"
        """,
    ),
    _t(
        "ops/alerts/notify.sh",
        "t15_webhook",
        True,
        """
        #!/bin/sh
        # Control-M "on failure" action: post into #nra-batch-alerts
        HOOK="{V}"
        curl -s -X POST -H 'Content-type: application/json' \\
            --data "{\\"text\\":\\"Job $1 failed on $(hostname)\\"}" "$HOOK"
        """,
    ),
    _t(
        "ops/archive/s3-offsite.cfg",
        "t15_awspair",
        True,
        """
        # offsite copy of the expdp dumps (DR bucket nra-dr-dumps)
        [nra-dr]
        {V}
        region = eu-central-1
        """,
    ),
    _t(
        "docs/runbooks/siebel-eai-setup.md",
        "t15_hexkey",
        True,
        """
        ## Siebel EAI to OSB

        The OSB proxy authenticates to Siebel with a shared HMAC key, set in
        `eai.cfg` under `[SharedSecret]`:

            HmacKey = {V}

        The same value goes into the OSB `SiebelHmac` service key provider.
        """,
    ),
]

TEMPLATES += [
    # ================================================================ look-alikes
    _t(
        "middleware/weblogic/basedom/servers/AdminServer/security/boot.properties",
        "t15_aesenc",
        False,
        """
        # encrypted by WebLogic on first start, only readable with this domain's
        # security/SerializedSystemIni.dat
        username={V}
        password={V2}
        """,
    ),
    _t(
        "middleware/weblogic/wlst/create_datasource_tmpl.py",
        "t15_ph",
        False,
        """
        # WLST template: fill in the values from the CyberArk safe before running
        connect('wlsadmin', '{V}', 't3://wlsadm01.nra.internal:7001')
        edit()
        startEdit()
        cd('/JDBCSystemResources/TaxCoreDS/JDBCResource/TaxCoreDS/JDBCDriverParams/TaxCoreDS')
        cmo.setPassword('{V2}')
        save()
        activate()
        """,
    ),
    _t(
        "middleware/weblogic/taxdom/config/jdbc/TaxCoreDS-jdbc.xml",
        "t15_aesenc",
        False,
        """
        <?xml version='1.0' encoding='UTF-8'?>
        <jdbc-data-source xmlns="http://xmlns.oracle.com/weblogic/jdbc-data-source">
          <name>TaxCoreDS</name>
          <jdbc-driver-params>
            <url>jdbc:oracle:thin:@//taxdb-scan.nra.internal:1521/TAXCORE</url>
            <driver-name>oracle.jdbc.OracleDriver</driver-name>
            <properties>
              <property><name>user</name><value>TAXCORE_APP</value></property>
            </properties>
            <password-encrypted>{V}</password-encrypted>
          </jdbc-driver-params>
        </jdbc-data-source>
        """,
    ),
    _t(
        "middleware/liberty/efiling/server-vars.xml",
        "t15_ref_java",
        False,
        """
        <server>
            <variable name="db2.user" value="db2inst1" />
            <keyStore id="defaultKeyStore" password="{V}" />
            <dataSource id="efilingDS" jndiName="jdbc/efiling">
                <properties.db2.jcc databaseName="EFILE" serverName="db2prd03.nra.internal"
                    portNumber="50001" user="${db2.user}" password="{V2}" />
            </dataSource>
        </server>
        """,
    ),
    _t(
        "middleware/liberty/portal/users.xml",
        "t15_ssha",
        False,
        """
        <server>
            <!-- hashed with securityUtility encode --encoding=hash -->
            <basicRegistry id="basic" realm="PortalRealm">
                <user name="portaladmin" password="{V}" />
                <user name="monitor" password="{V2}" />
            </basicRegistry>
        </server>
        """,
    ),
    _t(
        "middleware/wildfly/billing/standalone-ha.xml",
        "t15_ref_java",
        False,
        """
        <datasource jndi-name="java:jboss/datasources/BillingDS" pool-name="BillingDS">
            <connection-url>jdbc:oracle:thin:@billdb01.norvanet.net:1521/BILLPRD</connection-url>
            <driver>ojdbc11</driver>
            <security>
                <user-name>BILL_APP</user-name>
                <password>{V}</password>
            </security>
        </datasource>
        """,
    ),
    _t(
        "middleware/tomcat/conf/tomcat-users.xml.sample",
        "t15_ph",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- sample shipped with the NRA Tomcat image; the real file is rendered by Ansible -->
        <tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
          <role rolename="manager-gui"/>
          <user username="tomcat" password="{V}" roles="manager-gui"/>
          <user username="deployer" password="{V2}" roles="manager-script"/>
        </tomcat-users>
        """,
    ),
    _t(
        "middleware/tomcat/conf/tomcat-users-hashed.xml",
        "t15_sha256",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- CredentialHandler: MessageDigestCredentialHandler algorithm="SHA-256" -->
        <tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
          <user username="tomcat" password="{V}" roles="manager-gui"/>
          <user username="deployer" password="{V2}" roles="manager-script"/>
        </tomcat-users>
        """,
    ),
    _t(
        "middleware/tomcat/conf/Catalina/localhost/reports.xml",
        "t15_ref_java",
        False,
        """
        <Context path="/reports" reloadable="false">
          <Resource name="jdbc/ReportsDB" auth="Container" type="javax.sql.DataSource"
                    driverClassName="oracle.jdbc.OracleDriver"
                    url="jdbc:oracle:thin:@crmdb02.norvanet.net:1521/CRMPRD"
                    username="REPORTS"
                    password="{V}"
                    maxTotal="20"/>
        </Context>
        """,
    ),
    _t(
        "middleware/mq/qm_nra01/client/mqclient-jms.properties.template",
        "t15_ph",
        False,
        """
        # copy to mqclient-jms.properties and fill in
        mq.qmgr=QM_NRA01
        mq.host=mqnra01.norvanet.net
        mq.channel=REFUNDS.SVRCONN
        mq.userid=svc_refunds
        mq.password={V}
        """,
    ),
    _t(
        "middleware/tibco/ems/users.conf",
        "t15_sha512crypt",
        False,
        """
        # generated by tibemsd, passwords are stored salted and hashed
        admin:{V}:"Administrator"
        svc_notify:{V2}:"Notification service"
        svc_taxbatch:{V3}:"Tax batch loader"
        """,
    ),
    _t(
        "middleware/osb/TaxGateway/Resources/ServiceAccounts/EBS_Passthrough.sa",
        "t15_ph",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <ser:service-account-def xmlns:ser="http://www.bea.com/wli/sb/services">
            <ser:description>Pass-through; customized at deploy time by the customization file</ser:description>
            <ser:static-account>
                <ser:username>OSB_EBS_INT</ser:username>
                <ser:password>{V}</ser:password>
            </ser:static-account>
        </ser:service-account-def>
        """,
    ),
    # ---------------------------------------------------------------- .NET look-alikes
    _t(
        "dotnet/TaxPortal.Web/Web.Debug.config",
        "t15_pkt",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <runtime>
            <assemblyBinding xmlns="urn:schemas-microsoft-com:asm.v1">
              <dependentAssembly>
                <assemblyIdentity name="Newtonsoft.Json" publicKeyToken="{V}" culture="neutral" />
                <bindingRedirect oldVersion="0.0.0.0-13.0.0.0" newVersion="13.0.0.0" />
              </dependentAssembly>
              <dependentAssembly>
                <assemblyIdentity name="Nra.TaxRules" publicKeyToken="{V2}" culture="neutral" />
              </dependentAssembly>
            </assemblyBinding>
          </runtime>
        </configuration>
        """,
    ),
    _t(
        "dotnet/TaxPortal.Web/Web.Template.config",
        "t15_ph",
        False,
        """
        <configuration>
          <connectionStrings>
            <add name="TaxPortalDb"
                 connectionString="Data Source=SQLTAX01\\PORTAL;Initial Catalog=TaxPortal;User ID=taxportal_app;Password={V}"
                 providerName="System.Data.SqlClient" />
          </connectionStrings>
          <appSettings>
            <add key="PaymentGateway.ApiKey" value="{V2}" />
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "dotnet/TaxPortal.Web/Web.Encrypted.config",
        "t15_b64",
        False,
        """
        <configuration>
          <connectionStrings configProtectionProvider="RsaProtectedConfigurationProvider">
            <EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element" xmlns="http://www.w3.org/2001/04/xmlenc#">
              <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc" />
              <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
                <EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#">
                  <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><KeyName>Rsa Key</KeyName></KeyInfo>
                  <CipherData><CipherValue>{V}</CipherValue></CipherData>
                </EncryptedKey>
              </KeyInfo>
              <CipherData><CipherValue>{V2}</CipherValue></CipherData>
            </EncryptedData>
          </connectionStrings>
        </configuration>
        """,
    ),
    _t(
        "dotnet/CallCentre.Web/machineKey.config",
        "t15_text",
        False,
        """
        <!-- single server, keys generated per application -->
        <machineKey validationKey="AutoGenerate,IsolateApps"
                    decryptionKey="AutoGenerate,IsolateApps"
                    validation="HMACSHA256" />
        <!-- login page text -->
        <add key="Login.ExpiredMessage" value="{V}" />
        """,
    ),
    _t(
        "dotnet/RefundWorker/App.Release.config",
        "t15_dpapi",
        False,
        """
        <?xml version="1.0" encoding="utf-8" ?>
        <configuration>
          <appSettings>
            <add key="MqUser" value="svc_refunds" />
            <!-- protected with DPAPI (LocalMachine) on BATCHWIN01 by setup.exe -->
            <add key="MqPassword" value="{V}" />
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "dotnet/NuGet.Config.user",
        "t15_dpapi",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSourceCredentials>
            <nra-internal>
              <add key="Username" value="svc_build" />
              <add key="Password" value="{V}" />
            </nra-internal>
          </packageSourceCredentials>
        </configuration>
        """,
    ),
    _t(
        "dotnet/packages.lock.json",
        "t15_b64",
        False,
        """
        {
          "version": 1,
          "dependencies": {
            "net8.0": {
              "Oracle.ManagedDataAccess.Core": {
                "type": "Direct",
                "requested": "[23.4.0, )",
                "resolved": "23.4.0",
                "contentHash": "{V}"
              },
              "Nra.TaxRules.Sdk": {
                "type": "Direct",
                "resolved": "4.2.1",
                "contentHash": "{V2}"
              }
            }
          }
        }
        """,
    ),
    _t(
        "iis/applicationHost.config.prod",
        "t15_iisenc",
        False,
        """
        <system.applicationHost>
            <applicationPools>
                <add name="TaxPortalPool" managedRuntimeVersion="v4.0">
                    <processModel identityType="SpecificUser" userName="NRA\\svc_taxportal" password="{V}" />
                </add>
            </applicationPools>
            <sites>
                <site name="TaxPortal" id="2">
                    <application path="/" applicationPool="TaxPortalPool">
                        <virtualDirectory path="/" physicalPath="\\\\fs01\\web\\taxportal" userName="NRA\\svc_webcontent" password="{V2}" />
                    </application>
                </site>
            </sites>
        </system.applicationHost>
        """,
    ),
    _t(
        "dotnet/CustomerCare.Api/appsettings.json",
        "t15_ref_json",
        False,
        """
        {
          "Jwt": {
            "Issuer": "https://sso.norvanet.net",
            "Audience": "customercare-api",
            "SigningKey": "{V}"
          },
          "KeyVault": { "Uri": "https://kv-care-prod.vault.azure.net/" }
        }
        """,
    ),
    _t(
        "dotnet/CustomerCare.Api/appsettings.Development.json",
        "t15_uuid",
        False,
        """
        {
          "AzureAd": {
            "Instance": "https://login.microsoftonline.com/",
            "TenantId": "{V}",
            "ClientId": "{V2}",
            "CallbackPath": "/signin-oidc"
          },
          "CorrelationHeader": "X-Correlation-Id"
        }
        """,
    ),
    # ---------------------------------------------------------------- database look-alikes
    _t(
        "db/oracle/scripts/nightly_export_wallet.sh",
        "t15_ref_shell",
        False,
        """
        #!/bin/ksh
        # uses the secure external password store, no password on the command line
        . /home/oracle/.profile_taxprd
        SYSPW={V}
        expdp /@TAXPRD_EXP schemas=TAXCORE directory=EXP_DIR \\
            dumpfile=taxcore_%U.dmp logfile=taxcore.log parallel=4
        """,
    ),
    _t(
        "db/oracle/rman/level0.rman.sh.tmpl",
        "t15_ph",
        False,
        """
        #!/bin/bash
        export ORACLE_SID=BILLPRD
        rman target sys/{V}@BILLPRD catalog rman/{V2}@RCATDB <<EOF
        run { backup incremental level 0 database plus archivelog; }
        EOF
        """,
    ),
    _t(
        "db/oracle/sql/audit_verifiers.sql",
        "t15_oraverifier",
        False,
        """
        -- output of SELECT name, spare4 FROM sys.user$ captured for the 12c verifier audit
        -- NAME          SPARE4
        -- TAXCORE_APP   {V}
        -- OSB_EBS_INT   {V2}
        SELECT username, password_versions FROM dba_users WHERE password_versions LIKE '%10G%';
        """,
    ),
    _t(
        "db/oracle/sql/create_users_template.sql",
        "t15_ph",
        False,
        """
        -- run as SYSDBA on EBSPRD after clone; values are substituted by the clone playbook
        CREATE USER OSB_EBS_INT IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE USERS QUOTA 100M ON USERS;
        ALTER USER APPS IDENTIFIED BY {V2};
        """,
    ),
    _t(
        "db/oracle/expdp/taxcore_20240611.sha256",
        "t15_sha256",
        False,
        """
        {V}  taxcore_01.dmp
        {V2}  taxcore_02.dmp
        {V3}  taxcore_03.dmp
        """,
    ),
    _t(
        "db/db2/catalog_efile_tmpl.clp",
        "t15_ref_shell",
        False,
        """
        -- db2 -tvf catalog_efile.clp (variables expanded by the wrapper script)
        CATALOG TCPIP NODE EFNODE REMOTE db2prd03.nra.internal SERVER 50001;
        CATALOG DATABASE EFILE AT NODE EFNODE;
        CONNECT TO EFILE USER db2inst1 USING {V};
        TERMINATE;
        """,
    ),
    _t(
        "db/mssql/jobs/rebuild_indexes_kerberos.cmd",
        "t15_ref_cmd",
        False,
        """
        @echo off
        rem Windows authentication; the password variable is only used for the SQL login fallback
        sqlcmd -S SQLTAX01\\PORTAL -E -d TaxPortal -i rebuild_indexes.sql -o rebuild.log
        sqlcmd -S SQLTAX02 -U maint_job -P {V} -Q "EXEC dbo.usp_PurgeAudit @days = 400"
        """,
    ),
    _t(
        "db/mssql/schema/dbo.Taxpayer.sql",
        "t15_text",
        False,
        """
        CREATE TABLE dbo.PortalUser (
            UserId        INT IDENTITY(1,1) PRIMARY KEY,
            TIN           CHAR(11) NOT NULL,
            PasswordHash  VARBINARY(64) NOT NULL,
            PasswordSalt  VARBINARY(16) NOT NULL,
            LastLogin     DATETIME2 NULL
        );
        INSERT INTO dbo.Messages (Code, Text) VALUES ('PWD_EXPIRED', N'{V}');
        """,
    ),
    _t(
        "db/mssql/ssis/LoadRefunds.Template.dtsConfig",
        "t15_ph",
        False,
        """
        <?xml version="1.0"?>
        <DTSConfiguration>
          <Configuration ConfiguredType="Property" Path="\\Package.Connections[REFPRD].Properties[Password]" ValueType="String">
            <ConfiguredValue>{V}</ConfiguredValue>
          </Configuration>
        </DTSConfiguration>
        """,
    ),
    # ---------------------------------------------------------------- mainframe / batch look-alikes
    _t(
        "mainframe/jcl/RACFPWD.jcl",
        "t15_sizeval",
        False,
        """
        //RACFPWD  JOB (NRA),'PASSWORD RULES',CLASS=A,MSGCLASS=X
        //STEP1    EXEC PGM=IKJEFT01
        //SYSTSPRT DD SYSOUT=*
        //SYSTSIN  DD *
          SETROPTS PASSWORD(INTERVAL({V}) HISTORY({V2}))
          SETROPTS PASSWORD(RULE1(LENGTH(8) ALPHANUM(1:8)))
          SETROPTS PASSWORD(REVOKE(3) WARNING(10))
        /*
        """,
    ),
    _t(
        "batch/ftp/.netrc.example",
        "t15_ph",
        False,
        """
        # example only, the real file is deployed by Ansible with mode 0600
        machine sftp.nra.internal login svc_taxbatch password {V}
        machine prtgw01.norvanet.net login nraprint password {V2}
        """,
    ),
    _t(
        "batch/ftp/get_bank_files_keys.sh",
        "t15_fingerprint",
        False,
        """
        #!/bin/bash
        # key-based SFTP; pin the server's host key fingerprint
        set -euo pipefail
        EXPECTED_FP="{V}"
        sftp -i /home/svc_taxbatch/.ssh/id_ed25519 -b get.batch nra_remit@sftp.centralbank-clearing.net
        """,
    ),
    _t(
        "docs/howto/sftp-uri-format.md",
        "t15_docpw",
        False,
        """
        ## URI format used by the transfer wrapper

        The wrapper accepts one URI per partner, for instance:

            sftp://partner_user:{V}@sftp.example.com/outgoing
            ftps://acme:{V2}@ftp.example.org:990/in

        Real partner URIs live in the CyberArk safe `NRA-BATCH`.
        """,
    ),
    _t(
        "batch/controlm/connection_profiles/TAXDB_vault.json",
        "t15_ref_json",
        False,
        """
        {
          "TAXDB_CP": {
            "Type": "ConnectionProfile:Database:Oracle:ServiceName",
            "TargetAgent": "ctmagt-tax01",
            "Host": "taxdb-scan.nra.internal",
            "ServiceName": "TAXCORE",
            "User": "CTM_BATCH",
            "Password": "{V}"
          }
        }
        """,
    ),
    _t(
        "batch/controlm/jobs/refunds_report.json",
        "t15_jobid",
        False,
        """
        {
          "NRA_REFUNDS": {
            "Type": "Folder",
            "ControlmServer": "ctmsrv01",
            "OrderId": "{V}",
            "ReportRefunds": {
              "Type": "Job:Command",
              "Command": "/opt/nra/bin/report_refunds.sh --run-id {V2}",
              "RunAs": "ctmagent"
            }
          }
        }
        """,
    ),
    _t(
        "batch/autosys/refunds_weekly.jil",
        "t15_ph",
        False,
        """
        insert_job: NRA_REFUNDS_WEEKLY   job_type: CMD
        command: /opt/nra/bin/refunds_weekly.sh
        machine: batch02.nra.internal
        owner: svc_taxbatch@batch02
        /* register the owner with: autosys_secure -a -u svc_taxbatch@batch02 -p {V} */
        """,
    ),
    # ---------------------------------------------------------------- Windows look-alikes
    _t(
        "windows/gpo/Policies/Machine/Preferences/Groups/Groups.xml",
        "t15_text",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <Groups clsid="{3125E937-EB16-4b4c-9934-ACFC2D49ECB3}">
          <User clsid="{DF5F1855-51E5-4d24-8B1A-D9BDE98BA1D1}" name="nra_localadm" image="2" changed="2023-09-01 07:02:10" uid="{0C1D2E3F-4A5B-4C6D-8E9F-A0B1C2D3E4F5}">
            <!-- password removed after MS14-025, LAPS manages it now -->
            <Properties action="U" newName="" fullName="NRA local admin" description="{V}" cpassword="" changeLogon="0" noChange="1" neverExpires="1" acctDisabled="0" userName="nra_localadm"/>
          </User>
        </Groups>
        """,
    ),
    _t(
        "windows/dsc/WebFarm.Config.ps1",
        "t15_ref_ps",
        False,
        """
        Configuration WebFarm {
            Import-DscResource -ModuleName PSDesiredStateConfiguration, xWebAdministration
            $poolPw = ConvertTo-SecureString {V} -AsPlainText -Force
            $poolCred = New-Object System.Management.Automation.PSCredential ('NRA\\svc_taxportal', $poolPw)
            Node $AllNodes.NodeName {
                xWebAppPool TaxPortalPool { Name = 'TaxPortalPool'; Credential = $poolCred }
            }
        }
        """,
    ),
    _t(
        "windows/dsc/WebFarm/localhost.mof",
        "t15_cert",
        False,
        """
        /*
        @TargetNode='WEBTAX01'
        @GeneratedBy=svc_dsc
        */
        instance of MSFT_Credential as $MSFT_Credential1ref
        {
        Password = "-----BEGIN CMS-----\\nMIIB3gYJKoZIhvcNAQcDoIIBzzCCAcsCAQAxggFGMIIBQgIBADAqMBYxFDASBgNV\\n-----END CMS-----";
        UserName = "NRA\\\\svc_taxportal";
        };
        /* encryption certificate (public part) used for the credentials above:
        {V}
        */
        """,
    ),
    _t(
        "windows/unattend/unattend-template.xml",
        "t15_ph",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <unattend xmlns="urn:schemas-microsoft-com:unattend">
          <settings pass="oobeSystem">
            <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
              <UserAccounts>
                <AdministratorPassword>
                  <Value>{V}</Value>
                  <PlainText>true</PlainText>
                </AdministratorPassword>
              </UserAccounts>
            </component>
          </settings>
        </unattend>
        """,
    ),
    _t(
        "windows/scripts/Set-DomainPasswordPolicy.ps1",
        "t15_sizeval",
        False,
        """
        # NRA domain password policy, approved by the security board (SB-2024-07)
        Import-Module ActiveDirectory
        Set-ADDefaultDomainPasswordPolicy -Identity nra.internal `
            -MinPasswordLength {V} `
            -PasswordHistoryCount {V2} `
            -ComplexityEnabled $true `
            -MaxPasswordAge (New-TimeSpan -Days 90)
        """,
    ),
    _t(
        "windows/scripts/Map-Drives-Cred.ps1",
        "t15_ref_ps",
        False,
        """
        # logon script; the share account password is pulled from the Secret Management vault
        $user = 'NORVANET\\care_share'
        $secure = ConvertTo-SecureString -String {V} -AsPlainText -Force
        $cred = [pscredential]::new($user, $secure)
        New-PSDrive -Name K -PSProvider FileSystem -Root '\\\\carefs01\\kb' -Credential $cred -Persist
        """,
    ),
    # ---------------------------------------------------------------- network look-alikes
    _t(
        "network/cisco/pe-nra-02/running-config.txt",
        "t15_type5",
        False,
        """
        hostname pe-nra-02
        !
        enable secret 5 {V}
        !
        username noc privilege 15 secret 5 {V2}
        username backup privilege 5 secret 5 {V3}
        !
        line vty 0 4
         login local
        """,
    ),
    _t(
        "network/cisco/pe-nra-03/running-config.txt",
        "t15_type9",
        False,
        """
        hostname pe-nra-03
        !
        enable algorithm-type scrypt secret {V}
        username noc privilege 15 secret 9 {V2}
        !
        ip ssh version 2
        """,
    ),
    _t(
        "network/cisco/snmpv3.cfg",
        "t15_engineid",
        False,
        """
        ! SNMPv3 only, communities removed in CHG-2291
        snmp-server engineID local {V}
        snmp-server group NOCV3 v3 priv read NOCVIEW
        snmp-server view NOCVIEW iso included
        snmp-server host 10.40.1.15 version 3 priv nocmon
        """,
    ),
    _t(
        "network/cisco/snmp-template.j2",
        "t15_ph",
        False,
        """
        ! rendered by the NOC golden-config job
        snmp-server community {V} RO 98
        snmp-server community {V2} RW 99
        snmp-server location {{ site.location }}
        """,
    ),
    _t(
        "network/nxos/dc1-leaf-08.conf",
        "t15_sha512crypt",
        False,
        """
        hostname dc1-leaf-08
        feature tacacs+
        username admin password 5 {V} role network-admin
        username netbackup password 5 {V2} role network-operator
        """,
    ),
    _t(
        "network/juniper/mx-core-03.set",
        "t15_sha512crypt",
        False,
        """
        set system host-name mx-core-03
        set system root-authentication encrypted-password "{V}"
        set system login user noc class super-user authentication encrypted-password "{V2}"
        set system login user noc authentication ssh-ed25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH2kq noc@jump01"
        """,
    ),
    _t(
        "network/f5/bigip-base.conf",
        "t15_f5enc",
        False,
        """
        auth user f5probe {
            description f5probe
            encrypted-password {V}
            partition-access {
                all-partitions { role guest }
            }
            shell none
        }
        ltm monitor https /Common/mon_selfcare {
            defaults-from /Common/https
            password {V2}
            username f5probe
        }
        """,
    ),
    _t(
        "network/f5/ssl/portal.nra.gov.crt",
        "t15_cert",
        False,
        """
        {V}
        """,
    ),
    _t(
        "network/fortigate/branch-fw-template.conf",
        "t15_ph",
        False,
        """
        config system admin
            edit "nocadmin"
                set accprofile "super_admin"
                set password {V}
            next
        end
        config vpn ipsec phase1-interface
            edit "to-NRA-HQ"
                set psksecret {V2}
            next
        end
        """,
    ),
    _t(
        "network/checkpoint/gaia-users.txt",
        "t15_sha512crypt",
        False,
        """
        # show configuration user (cp-nra-a), captured for the audit
        set user admin password-hash {V}
        set user opsread password-hash {V2}
        set expert-password-hash {V3}
        """,
    ),
    _t(
        "network/radius/clients.conf.dist",
        "t15_ph",
        False,
        """
        client ce-taxoffices {
            ipaddr = 10.88.0.0/16
            secret = {V}
            shortname = nra-ce
        }
        """,
    ),
    _t(
        "network/ssh/noc_authorized_keys",
        "t15_sshpub",
        False,
        """
        # NOC jump hosts allowed on the core routers
        {V}
        {V2}
        """,
    ),
    # ---------------------------------------------------------------- ERP / CRM look-alikes
    _t(
        "erp/sap/sapnwrfc.ini.sample",
        "t15_ph",
        False,
        """
        DEST=NRA_ECC_QAS
        ASHOST=sapecc-qas.nra.internal
        SYSNR=00
        CLIENT=300
        USER=RFC_TAXSYNC
        PASSWD={V}
        LANG=EN
        """,
    ),
    _t(
        "erp/sap/pyrfc_sync_env.py",
        "t15_ref_py",
        False,
        """
        import os

        import keyring
        import settings
        from pyrfc import Connection

        conn = Connection(
            ashost="sapcrm-prd.norvanet.net",
            sysnr="01",
            client="100",
            user="RFC_BILLING",
            passwd={V},
        )
        """,
    ),
    _t(
        "erp/ebs/clone/adcfgclone_apps.rsp.tmpl",
        "t15_ph",
        False,
        """
        # EBS 12.2 apps tier clone answer file (template, rendered per target)
        s_apps_user=APPS
        s_apps_password={V}
        s_weblogic_password={V2}
        s_dbSid=EBSTST
        """,
    ),
    _t(
        "erp/ebs/fnd_user_export.csv",
        "t15_sha256",
        False,
        """
        USER_NAME,START_DATE,ENCRYPTED_USER_PASSWORD_SHA256,DESCRIPTION
        OSB_EBS_INT,2021-04-01,{V},OSB integration
        SYSADMIN,2010-01-01,{V2},System administrator
        TAX_AR_CLERK,2022-09-12,{V3},AR clerk
        """,
    ),
    # ---------------------------------------------------------------- LDAP look-alikes
    _t(
        "ldap/ldif/add_service_accounts_hashed.ldif",
        "t15_ssha",
        False,
        """
        dn: cn=svc_refunds,ou=Service,dc=nra,dc=internal
        objectClass: inetOrgPerson
        cn: svc_refunds
        sn: Refunds service
        userPassword: {V}

        dn: cn=svc_notify,ou=Service,dc=nra,dc=internal
        objectClass: inetOrgPerson
        cn: svc_notify
        sn: Notification service
        userPassword: {V2}
        """,
    ),
    _t(
        "ldap/sssd/sssd.conf.j2",
        "t15_ph",
        False,
        """
        [domain/nra.internal]
        id_provider = ldap
        ldap_uri = ldaps://dc01.nra.internal
        ldap_default_bind_dn = cn=svc_sssd,ou=Service,dc=nra,dc=internal
        ldap_default_authtok_type = password
        ldap_default_authtok = {V}
        """,
    ),
    _t(
        "ldap/spring/application.properties",
        "t15_ref_java",
        False,
        """
        spring.ldap.urls=ldaps://dc01.nra.internal:636
        spring.ldap.base=dc=nra,dc=internal
        spring.ldap.username=cn=svc_portal,ou=Service,dc=nra,dc=internal
        spring.ldap.password={V}
        spring.datasource.password={V2}
        """,
    ),
    _t(
        "ldap/tools/audit_ids.py",
        "t15_uuid",
        False,
        """
        from ldap3 import Connection, Server

        # objectGUIDs of the accounts excluded from the stale-account sweep
        EXCLUDED = {
            "{V}",
            "{V2}",
            "{V3}",
        }
        server = Server("dc02.nra.internal", use_ssl=True)
        conn = Connection(server, authentication="SASL", sasl_mechanism="GSSAPI", auto_bind=True)
        """,
    ),
    _t(
        "ldap/openldap/slapd.conf.excerpt",
        "t15_ssha",
        False,
        """
        database    mdb
        suffix      "dc=norvanet,dc=net"
        rootdn      "cn=Manager,dc=norvanet,dc=net"
        # slappasswd -h {SSHA}
        rootpw      {V}
        directory   /var/lib/ldap
        """,
    ),
    # ---------------------------------------------------------------- tooling look-alikes
    _t(
        "tooling/tivoli/itm_silent_install.tmpl",
        "t15_ph",
        False,
        """
        INSTALL_PRODUCT=lz
        CMSCONNECT=YES
        HOSTNAME=tems01.norvanet.net
        TEMS_USER=sysadmin
        TEMS_PASSWORD={V}
        """,
    ),
    _t(
        "tooling/ansible/group_vars/weblogic/vault.yml",
        "t15_vault",
        False,
        """
        # encrypted with ansible-vault, decrypted only on the control node
        wls_admin_password: !vault |
          {IV}
        """,
    ),
    # ---------------------------------------------------------------- documentation look-alikes
    _t(
        "docs/runbooks/taxportal-failover-v2.md",
        "t15_ph",
        False,
        """
        # TaxPortal failover to DC2 (v2)

        1. Stop the managed servers in DC1.
        2. Log in to the DC2 admin console as `wlsadmin` / `{V}` (password in CyberArk, safe `NRA-MW`).
        3. Switch the database:

           ```
           sqlplus sys/{V2}@TAXSTBY as sysdba
           ```
        """,
    ),
    _t(
        "docs/runbooks/password-rotation.adoc",
        "t15_text",
        False,
        """
        = Service account password rotation

        NOTE: The portal shows "{V}" when a rotated account is still cached.

        . Rotate the password in CyberArk (`Change` on the account).
        . Run the `mw-rotate` job in Control-M.
        . Check `boot.properties` was re-encrypted (values start with `{AES256}`).
        """,
    ),
    _t(
        "docs/runbooks/db2-hadr-v2.rst",
        "t15_ref_shell",
        False,
        """
        DB2 HADR takeover (EFILE, v2)
        =============================

        The instance owner password is read from the vault agent sidecar::

           export DB2PW={V}
           db2 connect to EFILE user db2inst1 using "$DB2PW"
        """,
    ),
    _t(
        "docs/wiki/export/Network-NOC-Access-v2.html",
        "t15_ph",
        False,
        """
        <!DOCTYPE html>
        <html>
        <head><title>NOC - Device access (sanitised)</title></head>
        <body>
        <table class="confluenceTable">
        <tr><th>Device class</th><th>User</th><th>Password</th></tr>
        <tr><td>Cisco PE/CE</td><td>noc</td><td>{V}</td></tr>
        <tr><td>F5 LTM</td><td>admin</td><td>{V2}</td></tr>
        </table>
        <p>Passwords are in the NOC safe; never paste them on this page.</p>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/wiki/export/Build-Artifacts.html",
        "t15_gitsha",
        False,
        """
        <html><body>
        <h2>Release 24.06 artefacts</h2>
        <ul>
          <li>taxportal.ear built from commit <code>{V}</code></li>
          <li>refundworker.zip built from commit <code>{V2}</code></li>
        </ul>
        </body></html>
        """,
    ),
    _t(
        "docs/security/password-policy.md",
        "t15_text",
        False,
        """
        # NRA password policy (extract)

        | Rule | Value |
        |------|-------|
        | Minimum length | 14 |
        | Lockout after | 5 attempts |
        | Portal message | {V} |

        Service accounts are exempt from expiry but are rotated by CyberArk every 90 days.
        """,
    ),
    _t(
        "docs/runbooks/oracle-users.md",
        "t15_docpw",
        False,
        """
        ## Connecting to the training database

        The training environment runs on the documentation sandbox only:

            jdbc:oracle:thin:scott/{V}@db.example.com:1521/TRAIN
            oracle://trainer:{V2}@training.example:1521/TRAIN

        Production connect strings use the wallet (`/@TAXPRD`).
        """,
    ),
]
