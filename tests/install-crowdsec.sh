#!/bin/sh
# Debian's `crowdsec` package for tests/crowdsec.rs, installed offline: its postinst would
# register with CrowdSec's Central API unless the credentials file says no, and its service
# stays off (the tests run the Local API themselves, with a config of their own). As root.
set -eu
export DEBIAN_FRONTEND=noninteractive
mkdir -p /etc/crowdsec
[ -s /etc/crowdsec/online_api_credentials.yaml ] || echo '# no thanks' > /etc/crowdsec/online_api_credentials.yaml
policy=/usr/sbin/policy-rc.d
made_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    made_policy=yes
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends crowdsec >/dev/null
if [ "$made_policy" = yes ]; then
    rm -f "$policy"
fi
