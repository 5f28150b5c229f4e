-- Test certificates made with the openssl command into a temp dir: a CA,
-- leaves for localhost (DNS and IP), another host name, a client, an
-- expired leaf, a leaf from an untrusted CA (with its chain) and a
-- self-signed one.
local certs = {}

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok == true or ok == 0, "command failed: " .. cmd)
end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function read_file(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("*a")
  f:close()
  return s
end

-- `openssl x509 -req` in OpenSSL 3.0 cannot backdate a certificate, so
-- every leaf is issued by `openssl ca`, whose -startdate/-enddate can: the
-- expired one is valid only in January 2020.
local CA_CNF = [[
[ ca ]
default_ca = test_ca
[ test_ca ]
database = db/index.txt
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = any_cn
unique_subject = no
copy_extensions = none
[ any_cn ]
commonName = supplied
[ server ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[ other ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
[ client ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
]]

local function make_certs()
  local dir = os.tmpname()
  os.remove(dir)
  sh("mkdir -p '" .. dir .. "/db'")
  write_file(dir .. "/db/index.txt", "")
  write_file(dir .. "/db/serial", "1000\n")
  write_file(dir .. "/ca.cnf", CA_CNF)
  local function run(fmt, ...)
    sh(("cd '%s' && " .. fmt):format(dir, ...))
  end
  local newkey = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  local function root(name, cn)
    run("openssl req -x509 %s -keyout %s.key -out %s.pem -days 30 " ..
      "-subj '/CN=%s' -addext 'basicConstraints=critical,CA:TRUE' " ..
      "-addext 'keyUsage=critical,keyCertSign,cRLSign'", newkey, name, name, cn)
  end
  local function leaf(name, cn, ca, ext, dates)
    run("openssl req -new %s -keyout %s.key -out %s.csr -subj '/CN=%s'",
      newkey, name, name, cn)
    run("openssl ca -config ca.cnf -batch -notext -cert %s.pem -keyfile %s.key " ..
      "-extensions %s %s -in %s.csr -out %s.pem", ca, ca, ext, dates, name, name)
  end
  root("ca", "lua-ws test CA")
  root("rogue", "rogue CA")
  leaf("server", "localhost", "ca", "server", "-days 30")
  leaf("other", "other.example", "ca", "other", "-days 30")
  leaf("client", "lua-ws client", "ca", "client", "-days 30")
  leaf("expired", "localhost", "ca", "server",
    "-startdate 20200101000000Z -enddate 20200201000000Z")
  leaf("untrusted", "localhost", "rogue", "server", "-days 30")
  -- a chain that ends in a root the client does not trust
  write_file(dir .. "/untrusted-chain.pem",
    read_file(dir .. "/untrusted.pem") .. read_file(dir .. "/rogue.pem"))
  run("openssl req -x509 %s -keyout self.key -out self.pem -days 30 " ..
    "-subj '/CN=localhost' -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1'",
    newkey)
  return dir
end


certs.sh = sh
certs.make = make_certs
certs.read_file = read_file
certs.write_file = write_file

--- Remove a directory made by make().
function certs.remove(dir)
  if dir then sh("rm -rf '" .. dir .. "'") end
end

return certs
