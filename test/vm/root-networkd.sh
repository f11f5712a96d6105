#!/bin/bash
# root-networkd.sh ROOT: the networkd VM root variant (build-root.sh's
# STRATA_TESTBED_POSTPROCESS): systemd-networkd configures the NIC and
# systemd-networkd-wait-online holds network-online.target until it is
# configured, as on a node that boots from its own configuration. The
# testbed masks wait-online (it has no network); this variant undoes that.
# The address itself comes with each VM (/etc/systemd/network/*.network).
set -euo pipefail
r=$1
rm -f "$r/etc/systemd/system/systemd-networkd-wait-online.service"
systemctl --root="$r" enable systemd-networkd.service systemd-networkd-wait-online.service
