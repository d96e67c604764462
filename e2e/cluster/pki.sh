# shellcheck shell=bash disable=SC2034
# Certificates, service-account keys and kubeconfigs for the local cluster, made with openssl.
# Sourced by up.sh after common.sh. A new cluster gets a new CA: nothing is reused across runs.

PKI_DIR=$STATE_DIR/pki

# new_key FILE: an EC P-256 key (fast to make, accepted by every component).
new_key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# issue_cert NAME SUBJECT USAGE [SAN]: NAME.key + NAME.crt signed by the cluster CA.
# USAGE is clientAuth, serverAuth or both; SAN like "DNS:a,IP:1.2.3.4".
issue_cert() {
  local name=$1 subject=$2 usage=$3 san=${4:-}
  local ext=$PKI_DIR/$name.ext
  new_key "$PKI_DIR/$name.key"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -z $san ]] || echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -key "$PKI_DIR/$name.key" -subj "$subject" -out "$PKI_DIR/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -CAcreateserial -days 30 -sha256 -extfile "$ext" -out "$PKI_DIR/$name.crt" 2>/dev/null ||
    fail "openssl: certificate $name"
  rm -f "$PKI_DIR/$name.csr" "$ext"
}

# write_kubeconfig FILE USER: a kubeconfig with the certs embedded, so that the admin one can
# be copied anywhere on this machine.
write_kubeconfig() {
  local file=$1 user=$2
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: replicadb-local
  cluster:
    server: https://$BRIDGE_IP:6443
    certificate-authority-data: $(base64 -w0 "$PKI_DIR/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI_DIR/$user.crt")
    client-key-data: $(base64 -w0 "$PKI_DIR/$user.key")
contexts:
- name: replicadb-local
  context:
    cluster: replicadb-local
    user: $user
current-context: replicadb-local
KUBECONFIG
  chmod 600 "$file"
}

make_pki() {
  mkdir -p "$PKI_DIR"
  chmod 700 "$PKI_DIR"
  new_key "$PKI_DIR/ca.key"
  openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=replicadb-local-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI_DIR/ca.crt" 2>/dev/null || fail "openssl: cluster CA"

  local api_san="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  api_san+=",DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
  api_san+=",IP:$KUBERNETES_SVC_IP,IP:$BRIDGE_IP,IP:127.0.0.1"
  issue_cert kube-apiserver "/CN=kube-apiserver" serverAuth "$api_san"
  issue_cert kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$BRIDGE_IP"
  issue_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  issue_cert admin "/O=system:masters/CN=replicadb-admin" clientAuth
  issue_cert kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
  issue_cert kube-scheduler "/CN=system:kube-scheduler" clientAuth
  issue_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  issue_cert kube-proxy "/CN=system:kube-proxy" clientAuth

  # Service-account tokens are signed with this key pair (RSA: what every client expects).
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI_DIR/sa.key" 2>/dev/null
  openssl pkey -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null

  local user
  for user in admin kube-controller-manager kube-scheduler kubelet kube-proxy; do
    write_kubeconfig "$STATE_DIR/$user.kubeconfig" "$user"
  done
}
