#!/bin/bash
# EMR bootstrap action of the gpu profile, on every node before YARN starts: mounts the cgroup v1
# devices controller where yarn-site's linux-container-executor.cgroups.mount-path (profiles.json)
# expects it, so YARN can give each GPU container its own device. As AWS's "Use the NVIDIA Spark-RAPIDS
# Accelerator with Amazon EMR" page shows for EMR 7.x (Amazon Linux 2023 mounts cgroup v2 only).
set -euxo pipefail
sudo mkdir -p /spark-rapids-cgroup/devices
sudo mount -t cgroup -o devices cgroupv1-devices /spark-rapids-cgroup/devices
sudo chmod a+rwx -R /spark-rapids-cgroup
