#!/usr/bin/perl
# An external dakia-prefork plugin in Perl, with core modules only (tools/plugins/PROTOCOL.md).
#
#   perl tools/plugins/perl/dakia-plugin.pl /run/dakia/example.sock [--delay SECONDS]
#
#   interceptors:
#     - name: external_plugin
#       config: {socket: /run/dakia/example.sock,
#                phases: [request_filter, post_upstream_response], on_failure: deny}
#
# What it does (an example policy):
#   request_filter          a request with an X-Block header is answered 403 here;
#                           /legacy/... goes upstream as /v2/...;
#                           every other request goes upstream with X-Perl-Plugin: seen
#   post_upstream_response  the response gets X-Perl-Plugin-Response: <upstream status>
#   --delay SECONDS         every answer is late by that much (to try timeouts and the
#                           gateway's failure policy)
#
# One process serves every connection of every gateway worker (IO::Select): each message
# is a 4-byte big-endian length and that much UTF-8 JSON, in both directions.
use strict;
use warnings;
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP;
use Socket qw(SOCK_STREAM);

my ($path, @options) = @ARGV;
die "usage: $0 SOCKET [--delay SECONDS]\n" unless defined $path;
my $delay = 0;
while (@options) {
    my $option = shift @options;
    if ($option eq '--delay') { $delay = shift @options // die "--delay needs seconds\n" }
    else { die "unknown option $option\n" }
}

my $MAX_MESSAGE = 1 << 20;     # a longer message is a broken peer: its connection is closed
my $json = JSON::PP->new->utf8->canonical;

unlink $path;
my $server = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $path, Listen => 128)
    or die "cannot listen on $path: $!\n";
$SIG{TERM} = $SIG{INT} = sub { unlink $path; exit 0 };
$SIG{PIPE} = 'IGNORE';         # a gateway that gave up on a late answer has closed the socket
$| = 1;
print "listening on $path\n";

my $select = IO::Select->new($server);
my %pending;                   # fileno => bytes received and not yet handled

while (1) {
    for my $handle ($select->can_read) {
        if ($handle == $server) {
            my $client = $server->accept or next;
            $select->add($client);
            $pending{fileno $client} = '';
            next;
        }
        my $key = fileno $handle;
        my $read = sysread($handle, my $data, 65536);
        if (!$read) { drop($handle, $key); next }
        $pending{$key} .= $data;
        while (length $pending{$key} >= 4) {
            my $length = unpack 'N', $pending{$key};
            if ($length == 0 || $length > $MAX_MESSAGE) { drop($handle, $key); last }
            last if length $pending{$key} < 4 + $length;
            my $body = substr $pending{$key}, 4, $length;
            substr($pending{$key}, 0, 4 + $length) = '';
            my $call = eval { $json->decode($body) };
            if (ref $call ne 'HASH') { drop($handle, $key); last }
            select(undef, undef, undef, $delay) if $delay;
            my $answer = $json->encode(answer($call));
            if (!write_all($handle, pack('N', length $answer) . $answer)) { drop($handle, $key); last }
        }
    }
}

# The verdict for one call.
sub answer {
    my ($call) = @_;
    my %verdict = (id => $call->{id});
    my $phase = $call->{phase} // '';
    if ($phase eq 'request_filter') {
        my $request = $call->{request};
        my %headers = map { $_->[0] => $_->[1] } @{ $request->{headers} };
        if (exists $headers{'x-block'}) {
            return { %verdict, verdict => 'respond', status => 403,
                     headers => { 'content-type' => 'text/plain' },
                     body => "403 Forbidden by the Perl plugin\n" };
        }
        $verdict{verdict} = 'modify';
        $verdict{set_headers} = { 'x-perl-plugin' => 'seen' };
        if ($request->{path} =~ m{^/legacy(/.*)?$}) {
            $verdict{path} = '/v2' . ($1 // '/');
        }
        return \%verdict;
    }
    if ($phase eq 'post_upstream_response') {
        return { %verdict, verdict => 'modify',
                 set_headers => { 'x-perl-plugin-response' => "$call->{response}{status}" } };
    }
    return { %verdict, verdict => 'continue' };
}

sub write_all {
    my ($handle, $bytes) = @_;
    while (length $bytes) {
        my $written = syswrite($handle, $bytes);
        return 0 unless defined $written && $written > 0;
        substr($bytes, 0, $written) = '';
    }
    return 1;
}

sub drop {
    my ($handle, $key) = @_;
    $select->remove($handle);
    delete $pending{$key};
    close $handle;
}
