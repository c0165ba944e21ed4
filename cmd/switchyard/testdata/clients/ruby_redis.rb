# redis-rb (Debian ruby-redis) through Switchyard: the Sentinel connection
# through the facade, and a plain one.
require 'redis'

$stdout.sync = true
host = ENV.fetch('REDIS_HOST')
port = Integer(ENV.fetch('REDIS_PORT'))
shost, sport = ENV.fetch('REDIS_SENTINEL_HOSTS').split(',').first.split(':')
master_name = ENV.fetch('REDIS_SENTINEL_MASTER')
prefix = ENV.fetch('MATRIX_PREFIX')
$errors = Hash.new(0)

def with_retry(mode)
  deadline = Time.now + 30
  begin
    yield
  rescue Redis::BaseConnectionError => e
    $errors[mode] += 1
    raise if Time.now > deadline
    warn "retry #{mode}: #{e.class}: #{e.message}"
    sleep 0.1
    retry
  end
end

def flow(mode, client, prefix)
  k = "#{prefix}:#{mode}"
  pong = with_retry(mode) { client.ping }
  raise "PING gave #{pong.inspect}" unless pong == 'PONG'
  with_retry(mode) { client.set("#{k}:test-key", 'test-value') }
  v = with_retry(mode) { client.get("#{k}:test-key") }
  raise "GET gave #{v.inspect}" unless v == 'test-value'
  with_retry(mode) { client.setex("#{k}:cache:result", 3600, 'data') }
  ttl = with_retry(mode) { client.ttl("#{k}:cache:result") }
  raise "TTL #{ttl}" unless ttl > 0 && ttl <= 3600
  with_retry(mode) { client.set("#{k}:user:123", 'user-data') }
  v = with_retry(mode) { client.get("#{k}:user:123") }
  raise "GET gave #{v.inspect}" unless v == 'user-data'
  puts "ok #{mode}"
end

def after(mode, client, prefix)
  start = Time.now
  key = "#{prefix}:#{mode}:after"
  with_retry(mode) { client.set(key, 'after') }
  v = with_retry(mode) { client.get(key) }
  raise "GET #{key} gave #{v.inspect}" unless v == 'after'
  puts "phase2 #{mode} key=#{key} errors=#{$errors[mode]} ms=#{((Time.now - start) * 1000).to_i}"
end

standard = Redis.new(host: host, port: port)
flow('standard', standard, prefix)

# redis-rb 4.x takes the Sentinel master name from the URL's host (or
# host:); `name:` is the 5.x spelling and 4.8 ignores it.
sentinel = Redis.new(url: "redis://#{master_name}",
                     sentinels: [{ host: shost, port: Integer(sport) }],
                     role: :master)
flow('sentinel', sentinel, prefix)

puts 'READY'
$stdin.gets

after('sentinel', sentinel, prefix)
after('standard', standard, prefix)
puts 'DONE'
