<?php
// Predis (Debian php-predis) through Switchyard: replication => 'sentinel'
// through the facade, and a plain connection.
require 'Predis/autoload.php';

$host = getenv('REDIS_HOST');
$port = (int) getenv('REDIS_PORT');
$sentinels = explode(',', getenv('REDIS_SENTINEL_HOSTS'));
$master = getenv('REDIS_SENTINEL_MASTER');
$prefix = getenv('MATRIX_PREFIX');
$errors = [];

function retry($mode, callable $fn)
{
    global $errors;
    $deadline = microtime(true) + 30;
    while (true) {
        try {
            return $fn();
        } catch (Predis\Connection\ConnectionException $e) {
            $errors[$mode] = ($errors[$mode] ?? 0) + 1;
            if (microtime(true) > $deadline) {
                throw $e;
            }
            fwrite(STDERR, "retry $mode: " . get_class($e) . ': ' . $e->getMessage() . "\n");
            usleep(100000);
        }
    }
}

function check($cond, $msg)
{
    if (!$cond) {
        fwrite(STDERR, "FAIL: $msg\n");
        exit(1);
    }
}

function flow($mode, $client, $prefix)
{
    $k = "$prefix:$mode";
    $pong = retry($mode, fn () => (string) $client->ping());
    check($pong === 'PONG', "PING gave $pong");
    retry($mode, fn () => $client->set("$k:test-key", 'test-value'));
    check(retry($mode, fn () => $client->get("$k:test-key")) === 'test-value', 'GET test-key');
    retry($mode, fn () => $client->setex("$k:cache:result", 3600, 'data'));
    $ttl = retry($mode, fn () => $client->ttl("$k:cache:result"));
    check($ttl > 0 && $ttl <= 3600, "TTL $ttl");
    retry($mode, fn () => $client->set("$k:user:123", 'user-data'));
    check(retry($mode, fn () => $client->get("$k:user:123")) === 'user-data', 'GET user:123');
    echo "ok $mode\n";
}

function after($mode, $client, $prefix)
{
    global $errors;
    $start = microtime(true);
    $key = "$prefix:$mode:after";
    retry($mode, fn () => $client->set($key, 'after'));
    $v = retry($mode, fn () => $client->get($key));
    check($v === 'after', "GET $key gave " . var_export($v, true));
    $ms = (int) ((microtime(true) - $start) * 1000);
    $n = $errors[$mode] ?? 0;
    echo "phase2 $mode key=$key errors=$n ms=$ms\n";
}

$standard = new Predis\Client("tcp://$host:$port");
flow('standard', $standard, $prefix);

// As in the connection guide, with the facade as the Sentinel.
$sentinel = new Predis\Client(
    array_map(fn ($s) => "tcp://$s", $sentinels),
    ['replication' => 'sentinel', 'service' => $master]
);
flow('sentinel', $sentinel, $prefix);

echo "READY\n";
fgets(STDIN);

after('sentinel', $sentinel, $prefix);
after('standard', $standard, $prefix);
echo "DONE\n";
