// The virtual board: the board design (UART + host link + engine, boards/top.py SerialEngine),
// compiled by Verilator, with its UART pins bridged to a pseudo-terminal that Python opened.
//
// Bytes the host writes to the terminal are put on the design's `rx` pin bit by bit (8N1,
// `--divisor` clock cycles per bit, back to back like a real UART at full rate); a software
// UART receiver samples `tx` in the middle of every bit and writes the bytes back. Nothing
// else touches the design: the protocol, the UART and the link are the board's own.
//
// Simulated time runs at full speed while anything happens (a byte on either line, the engine
// busy, the link answering). When the host goes quiet in the middle of a frame, time follows
// the wall clock instead, so that the link's timeout (`--link-timeout` cycles) takes
// `--idle-ms` of real time, as on a board: a host that stalls for a moment does not get its
// frame cut. Once the link must have answered and timed out whatever was pending, the harness
// sleeps in poll() until the next byte.
//
// Fault injection (tests): `--flip-reply K` flips a bit of every K-th byte sent to the host,
// `--flip-request K` of every K-th byte put on the rx line. `--stats FILE` writes cycles and
// byte counts as JSON when the harness stops (SIGTERM, SIGINT) and every `--stats-every` s.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "verilated.h"
#include "Vmemprop_board.h"

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int) { g_stop = 1; }

struct Options {
    int fd = -1;
    uint64_t divisor = 4;
    uint64_t link_timeout = 16384;   // the design's link timeout, in cycles
    uint64_t respond = 4096;         // cycles after a byte in which the link surely answers
    double idle_ms = 100.0;          // wall time that the link timeout takes while the host is quiet
    uint64_t flip_reply = 0;
    uint64_t flip_request = 0;
    const char* stats = nullptr;
    double stats_every = 0.0;
};

static uint64_t arg_u64(const char* s) { return std::strtoull(s, nullptr, 10); }

static Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        const char* v = argv[i + 1];
        if (k == "--fd") o.fd = std::atoi(v);
        else if (k == "--divisor") o.divisor = arg_u64(v);
        else if (k == "--link-timeout") o.link_timeout = arg_u64(v);
        else if (k == "--respond") o.respond = arg_u64(v);
        else if (k == "--idle-ms") o.idle_ms = std::atof(v);
        else if (k == "--flip-reply") o.flip_reply = arg_u64(v);
        else if (k == "--flip-request") o.flip_request = arg_u64(v);
        else if (k == "--stats") o.stats = v;
        else if (k == "--stats-every") o.stats_every = std::atof(v);
        else { std::fprintf(stderr, "vboard: unknown option %s\n", k.c_str()); std::exit(2); }
    }
    if (o.fd < 0 || o.divisor < 4) { std::fprintf(stderr, "vboard: need --fd and --divisor >= 4\n"); std::exit(2); }
    return o;
}

struct Counters {
    uint64_t cycles = 0, busy_cycles = 0, bytes_in = 0, bytes_out = 0, dropped_out = 0;
    uint64_t flipped_in = 0, flipped_out = 0;
    double active_s = 0.0;
};

static void write_stats(const Options& o, const Counters& c, double wall_s) {
    if (!o.stats) return;
    std::string tmp = std::string(o.stats) + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) return;
    std::fprintf(f, "{\"cycles\": %llu, \"busy_cycles\": %llu, \"bytes_in\": %llu, \"bytes_out\": %llu, "
                    "\"dropped_out\": %llu, \"flipped_in\": %llu, \"flipped_out\": %llu, "
                    "\"active_s\": %.6f, \"wall_s\": %.6f}\n",
                 (unsigned long long)c.cycles, (unsigned long long)c.busy_cycles, (unsigned long long)c.bytes_in,
                 (unsigned long long)c.bytes_out, (unsigned long long)c.dropped_out,
                 (unsigned long long)c.flipped_in, (unsigned long long)c.flipped_out, c.active_s, wall_s);
    std::fclose(f);
    std::rename(tmp.c_str(), o.stats);
}

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    prctl(PR_SET_PDEATHSIG, SIGTERM);   // the process that opened the terminal is gone: stop too
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    fcntl(o.fd, F_SETFL, fcntl(o.fd, F_GETFL) | O_NONBLOCK);

    auto* ctx = new VerilatedContext;
    ctx->commandArgs(1, argv);
    auto* top = new Vmemprop_board{ctx};
    Counters c;

    auto tick = [&]() {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
        c.cycles++;
        if (top->busy) c.busy_cycles++;
    };
    top->rx = 1;
    top->rst = 1;
    for (int i = 0; i < 8; i++) tick();
    top->rst = 0;

    std::deque<uint8_t> in, out;
    // rx driver: the bits of the current byte (start, 8 data, stop), each `divisor` cycles
    int rx_bit = -1;             // -1: idle line
    uint64_t rx_timer = 0;
    uint16_t rx_frame = 0;
    // tx monitor
    bool tx_active = false;
    uint64_t tx_t = 0;
    uint8_t tx_byte = 0;
    uint64_t last_event = 0;     // cycle of the last byte on either line, or of the engine being busy
    bool seen_event = false;
    const uint64_t D = o.divisor;
    const uint64_t settle = o.link_timeout + o.respond;   // after this much quiet the link is idle

    using clock = std::chrono::steady_clock;
    auto start = clock::now();
    auto last_stats = start;
    uint8_t buf[4096];

    auto pull = [&](int timeout_ms) {
        if (in.size() >= 65536) return;
        struct pollfd p = {o.fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) return;
        ssize_t n = read(o.fd, buf, sizeof buf);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++) in.push_back(buf[i]);
        } else if (n < 0 && errno == EIO) {
            usleep(10000);   // no terminal open on the other side
        }
    };
    auto push = [&]() {
        while (!out.empty()) {
            uint8_t chunk[4096];
            size_t n = 0;
            for (; n < out.size() && n < sizeof chunk; n++) chunk[n] = out[n];
            ssize_t w = write(o.fd, chunk, n);
            if (w <= 0) break;
            out.erase(out.begin(), out.begin() + w);
        }
        while (out.size() > (1u << 20)) { out.pop_front(); c.dropped_out++; }   // nobody reads: drop
    };

    auto run = [&](uint64_t cycles) {
        for (uint64_t k = 0; k < cycles; k++) {
            // drive rx
            if (rx_bit < 0 && !in.empty()) {
                uint8_t b = in.front();
                in.pop_front();
                c.bytes_in++;
                if (o.flip_request && c.bytes_in % o.flip_request == 0) { b ^= 0x04; c.flipped_in++; }
                rx_frame = (uint16_t)((1u << 9) | ((unsigned)b << 1));   // start 0, data LSB first, stop 1
                rx_bit = 0;
                rx_timer = D;
            }
            top->rx = rx_bit < 0 ? 1 : (rx_frame >> rx_bit) & 1;
            tick();
            if (rx_bit >= 0 && --rx_timer == 0) {
                rx_timer = D;
                if (++rx_bit == 10) { rx_bit = -1; last_event = c.cycles; seen_event = true; }
            }
            // sample tx
            unsigned line = top->tx;
            if (!tx_active) {
                if (!line) { tx_active = true; tx_t = 0; tx_byte = 0; }
            } else {
                tx_t++;
                if (tx_t >= D / 2 && (tx_t - D / 2) % D == 0) {
                    uint64_t bit = (tx_t - D / 2) / D;
                    if (bit >= 1 && bit <= 8) tx_byte |= (uint8_t)(line << (bit - 1));
                    if (bit == 9) {
                        tx_active = false;
                        if (line) {   // a stop bit that reads 0 would be a design bug: drop the byte
                            uint8_t b = tx_byte;
                            c.bytes_out++;
                            if (o.flip_reply && c.bytes_out % o.flip_reply == 0) { b ^= 0x10; c.flipped_out++; }
                            out.push_back(b);
                        }
                        last_event = c.cycles;
                        seen_event = true;
                    }
                }
            }
            if (top->busy) { last_event = c.cycles; seen_event = true; }
        }
    };

    bool pacing = false;                 // simulated time follows the wall clock
    auto pace_t0 = clock::now();
    uint64_t pace_c0 = 0;
    const double cycles_per_ms = (double)o.link_timeout / std::max(1.0, o.idle_ms);
    while (!g_stop) {
        bool busy_line = rx_bit >= 0 || !in.empty() || tx_active || top->busy;
        uint64_t quiet = seen_event ? c.cycles - last_event : settle;
        if (busy_line || quiet < o.respond) {
            pacing = false;
            auto t0 = clock::now();
            run(256);
            c.active_s += std::chrono::duration<double>(clock::now() - t0).count();
            push();
            if (in.size() < 4096) pull(0);
        } else if (quiet < settle) {
            // the host is quiet and the link may be waiting inside a frame: time follows the wall clock
            if (!pacing) { pacing = true; pace_t0 = clock::now(); pace_c0 = c.cycles; }
            push();
            pull(1);
            if (in.empty()) {
                double ms = std::chrono::duration<double, std::milli>(clock::now() - pace_t0).count();
                uint64_t target = pace_c0 + (uint64_t)(ms * cycles_per_ms);
                if (target > c.cycles) run(std::min<uint64_t>(target - c.cycles, settle));
            }
        } else {
            pacing = false;
            push();
            pull(200);
        }
        if (o.stats && o.stats_every > 0) {
            auto now = clock::now();
            if (std::chrono::duration<double>(now - last_stats).count() >= o.stats_every) {
                write_stats(o, c, std::chrono::duration<double>(now - start).count());
                last_stats = now;
            }
        }
    }
    push();
    write_stats(o, c, std::chrono::duration<double>(clock::now() - start).count());
    top->final();
    delete top;
    delete ctx;
    return 0;
}
