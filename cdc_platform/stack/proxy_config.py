"""The production profile's front door: nginx's configuration and oauth2-proxy's command line.

Why these two: nginx (Debian's package) terminates TLS, rate-limits sign-in attempts and routes each
signed-in user to their role's webserver; oauth2-proxy (the project teams already put in front of
internal tools) shows the sign-in form, checks the password against the bcrypt htpasswd file once,
and then keeps the session in an encrypted, HTTP-only cookie, so no request after sign-in pays for a
bcrypt check (nginx's own ``auth_basic`` would run one on every request of the UI's constant
polling) and single sign-on is a matter of oauth2-proxy's provider flags. Neither is ours to
maintain; what is ours is this file, which wires them together.

The path of a request: nginx asks oauth2-proxy (``auth_request``) whether the session cookie is
valid and who it belongs to; without a session the browser is sent to the sign-in form; with one,
nginx looks the user's role up in the roles map (written by ``cdc-platform users``), sets
``X-Forwarded-User`` (a client's own value is overwritten) and proxies to that role's webserver on
its Unix socket. A signed-in user without a role (removed since, or known only to the identity
provider) gets 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cdc_platform.access.users import Role

#: sign-in attempts (POSTs) per client address: a burst of 10, then 10 a minute; more get 429
SIGN_IN_RATE = "10r/m"
SIGN_IN_BURST = 10
#: how long a session lasts without signing in again
SESSION_HOURS = 12


@dataclass(frozen=True)
class ProxyLayout:
    host: str
    port: int
    auth_port: int
    sockets: dict[Role, Path]
    roles_file: Path
    certificate: Path
    key: Path
    temp_dir: Path
    logs_dir: Path
    pid_path: Path
    no_role_socket: Path
    #: where oauth2-proxy listens, seen from nginx (the same host in the local stack; ``auth`` in compose)
    auth_host: str | None = None


def nginx_conf(layout: ProxyLayout, worker_user: str | None = None) -> str:
    auth = f"http://{layout.auth_host or layout.host}:{layout.auth_port}"
    upstreams = "\n".join(
        f"    upstream cdc_{role.value} {{ server unix:{path}; }}" for role, path in layout.sockets.items()
    )
    routes = "\n".join(f"        {role.value} cdc_{role.value};" for role in layout.sockets)
    temp = layout.temp_dir
    forwarded = """
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;"""
    return f"""# Written by `cdc-platform stack up --profile production` (cdc_platform/stack/proxy_config.py).
{f"user {worker_user};" if worker_user else ""}
worker_processes 1;
pid {layout.pid_path};
error_log {layout.logs_dir}/proxy-error.log warn;
events {{ worker_connections 1024; }}

http {{
    log_format cdc '$remote_addr $cdc_user [$time_local] "$request" $status $body_bytes_sent $request_time';
    access_log {layout.logs_dir}/proxy-access.log cdc;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    client_max_body_size 20m;
    server_tokens off;

    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    # the signed-in user's role, from `cdc-platform users` (reloaded on every change)
    map $cdc_user $cdc_role {{
        default "";
        include {layout.roles_file};
    }}
    map $cdc_role $cdc_upstream {{
        default cdc_no_role;
{routes}
    }}
    # only sign-in attempts count against the limit (an empty key is not counted)
    map $request_method $cdc_sign_in_key {{ POST $binary_remote_addr; default ""; }}
    limit_req_zone $cdc_sign_in_key zone=cdc_sign_in:1m rate={SIGN_IN_RATE};

{upstreams}
    upstream cdc_no_role {{ server unix:{layout.no_role_socket}; }}

    server {{
        listen unix:{layout.no_role_socket};
        set $cdc_user "";
        default_type text/plain;
        return 403 "Signed in, but this user has no role on the CDC platform; ask an admin (cdc-platform users add).\\n";
    }}

    server {{
        listen {layout.host}:{layout.port} ssl;
        ssl_certificate {layout.certificate};
        ssl_certificate_key {layout.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        set $cdc_user "";
        add_header Strict-Transport-Security "max-age=31536000" always;

        location = /oauth2/sign_in {{
            limit_req zone=cdc_sign_in burst={SIGN_IN_BURST} nodelay;
            limit_req_status 429;
            proxy_pass {auth};{forwarded}
        }}
        location /oauth2/ {{
            proxy_pass {auth};{forwarded}
        }}
        location = /oauth2/auth {{
            internal;
            proxy_pass {auth};{forwarded}
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location @sign_in {{
            return 302 /oauth2/sign_in?rd=$request_uri;
        }}
        location / {{
            auth_request /oauth2/auth;
            auth_request_set $cdc_user $upstream_http_x_auth_request_user;
            error_page 401 = @sign_in;
            proxy_set_header X-Forwarded-User $cdc_user;{forwarded}
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            proxy_buffering off;
            proxy_pass http://$cdc_upstream;
        }}
    }}
}}
"""


def oauth2_proxy_args(*, host: str, auth_port: int, htpasswd: Path, cookie_secret_file: Path,
                      templates: Path, trusted_proxy: str | None = None) -> list[str]:  # fmt: skip
    """oauth2-proxy with the htpasswd users only; single sign-on adds a provider's flags to these."""
    return [
        f"--http-address={host}:{auth_port}",
        "--reverse-proxy",
        f"--trusted-proxy-ip={trusted_proxy or host}",
        "--set-xauthrequest",
        f"--htpasswd-file={htpasswd}",
        "--display-htpasswd-form=true",
        "--email-domain=*",
        "--upstream=static://202",
        # no identity provider unless one is configured: these only satisfy oauth2-proxy's parser
        "--client-id=cdc-platform",
        "--client-secret=unused-without-single-sign-on",
        "--provider-display-name=none",
        f"--cookie-secret-file={cookie_secret_file}",
        "--cookie-name=_cdc_session",
        "--cookie-secure=true",
        "--cookie-samesite=lax",
        f"--cookie-expire={SESSION_HOURS}h",
        f"--custom-templates-dir={templates}",
        "--banner=CDC platform",
        "--footer=-",
        "--silence-ping-logging",
    ]
