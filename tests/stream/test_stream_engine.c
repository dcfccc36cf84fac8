/*
 * The stream engine between two sides of a simulated network (simnet.h):
 * exactly-once, in-order delivery through loss, reordering, duplication,
 * delay, corruption and partitions; striping over several paths and the
 * death of one; backpressure; a peer that restarts; FIN; the protocol
 * checks; and memory back at its baseline after every run.
 *
 * Every run is reproducible from the seed printed when it fails.
 */
#include <atbus/error.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/rand.h"
#include "simnet.h"
#include "testing.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIM_SLOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_SLOW 1
#endif
#endif
#ifndef SIM_SLOW
#define SIM_SLOW 0
#endif

static const sim_path_spec datagram_path = {
    .mtu = 548,
    .bytes_per_us = 100, /* 100 MB/s */
    .faults = {.delay_us = 200},
};

static const sim_path_spec stream_path = {
    .mtu = 65536,
    .reliable = 1,
    .bytes_per_us = 1000,
    .faults = {.delay_us = 50},
};

/* run_checked runs s and checks that everything arrived exactly once, in
 * order, with the right bytes. */
static void
run_checked(sim *s, uint64_t seed, uint64_t limit_us)
{
    int ok = sim_run(s, limit_us);
    for (int side = 0; side < 2; side++) {
        const sim_side_stats *st = sim_stats(s, side);
        ck_assert_msg(st->bad == 0, "seed %llu: side %d saw %llu bad messages",
                      (unsigned long long)seed, side,
                      (unsigned long long)st->bad);
    }
    ck_assert_msg(ok, "seed %llu: not everything arrived by t=%llu us",
                  (unsigned long long)seed, (unsigned long long)sim_now(s));
}

/* The acceptance mix: 5 % loss, 10 % reordering, 1 % duplication. */
static void
acceptance_run(uint64_t seed, uint64_t messages)
{
    atb_sengine_config cfg;
    atb_sengine_config_default(&cfg);
    sim_path_spec p = datagram_path;
    p.faults.loss = 0.05;
    p.faults.reorder = 0.10;
    p.faults.extra_us = 300;
    p.faults.duplicate = 0.01;
    p.faults.jitter_us = 20;
    long live = atb_alloc_live();
    sim *s = sim_new(seed, &cfg, &p, 1, 64, 4000, 1000);
    ck_assert_ptr_nonnull(s);
    sim_queue(s, 0, 1, messages);
    run_checked(s, seed, 3600ull * 1000000u);
    ck_assert_uint_eq(sim_received(s, 1, 1), messages);
    sim_free(s);
    ck_assert_int_eq(atb_alloc_live(), live);
}

START_TEST(test_acceptance_million_over_lossy_datagrams)
{
    /* 50 seeds of 1 000 000 messages in the optimised build; the
     * sanitizer build runs the same mix on fewer seeds. */
    int seeds = SIM_SLOW ? 4 : 50;
    uint64_t per_seed = SIM_SLOW ? 250000 : 1000000;
    for (int i = 0; i < seeds; i++) {
        acceptance_run(1000 + (uint64_t)i, per_seed);
    }
}
END_TEST

/* Random fault mixes and message sizes 0 B .. 1 MiB, both directions and
 * several streams at once. */
START_TEST(test_property_random_mixes)
{
    int seeds = SIM_SLOW ? 12 : 60;
    for (int i = 0; i < seeds; i++) {
        uint64_t seed = 77000 + (uint64_t)i;
        uint64_t r = seed;
        atb_sengine_config cfg;
        atb_sengine_config_default(&cfg);
        sim_path_spec paths[2];
        size_t npaths = 1 + atb_rand_below(&r, 2);
        for (size_t k = 0; k < npaths; k++) {
            int reliable = atb_rand_below(&r, 3) == 0;
            paths[k] = reliable ? stream_path : datagram_path;
            if (!reliable) {
                paths[k].mtu = atb_rand_below(&r, 2) ? 548 : 1232;
                sim_faults *f = &paths[k].faults;
                f->loss = (double)atb_rand_below(&r, 31) / 100.0;
                f->reorder = (double)atb_rand_below(&r, 21) / 100.0;
                f->extra_us = 100 + atb_rand_below(&r, 2000);
                f->duplicate = (double)atb_rand_below(&r, 6) / 100.0;
                f->corrupt = (double)atb_rand_below(&r, 4) / 100.0;
                f->delay_us = 50 + atb_rand_below(&r, 5000);
                f->jitter_us = atb_rand_below(&r, 500);
                if (atb_rand_below(&r, 3) == 0) {
                    f->part_start = 20000 + atb_rand_below(&r, 50000);
                    f->part_end = f->part_start + atb_rand_below(&r, 300000);
                }
            }
        }
        long live = atb_alloc_live();
        sim *s = sim_new(seed, &cfg, paths, npaths, 300, 1024 * 1024, 200);
        ck_assert_ptr_nonnull(s);
        uint64_t n = SIM_SLOW ? 600 : 2000;
        sim_queue(s, 0, 0, n);
        sim_queue(s, 0, 3, n / 2);
        sim_queue(s, 1, 0, n / 4);
        sim_queue(s, 1, -1, 50);
        run_checked(s, seed, 3600ull * 1000000u);
        sim_free(s);
        ck_assert_msg(atb_alloc_live() == live, "seed %llu leaks",
                      (unsigned long long)seed);
    }
}
END_TEST

/* Two byte-stream paths carry one stream striped; one dies mid-transfer
 * with data in flight. Nothing is lost or delivered twice. */
START_TEST(test_mixing_kill_one_of_two)
{
    for (uint64_t seed = 1; seed <= 10; seed++) {
        atb_sengine_config cfg;
        atb_sengine_config_default(&cfg);
        sim_path_spec paths[2] = {stream_path, stream_path};
        paths[1].faults.delay_us = 80;
        sim *s = sim_new(seed, &cfg, paths, 2, 2000, 200000, 100);
        ck_assert_ptr_nonnull(s);
        sim_queue(s, 0, 1, 20000);
        sim_kill_path(s, 1, 3000 + seed * 500);
        run_checked(s, seed, 600ull * 1000000u);
        atb_spath_stats ps;
        ck_assert_int_eq(atb_sengine_path_stats(sim_engine(s, 0), 0, &ps),
                         ATBUS_OK);
        /* The survivor resent what the dead path had not had acked. */
        ck_assert_uint_gt(ps.retransmissions, 0);
        ck_assert_int_eq(atb_sengine_path_stats(sim_engine(s, 0), 1, &ps),
                         ATBUS_ENOTFOUND);
        sim_free(s);
    }
}
END_TEST

/* Mixed channels: a datagram path and a byte stream, the datagram one
 * lossy; the stream uses both. */
START_TEST(test_mixing_datagram_and_stream)
{
    atb_sengine_config cfg;
    atb_sengine_config_default(&cfg);
    sim_path_spec paths[2] = {stream_path, datagram_path};
    paths[1].faults.loss = 0.2;
    sim *s = sim_new(5, &cfg, paths, 2, 1000, 0, 0);
    ck_assert_ptr_nonnull(s);
    sim_queue(s, 0, 2, 30000);
    run_checked(s, 5, 600ull * 1000000u);
    atb_spath_stats a, b;
    ck_assert_int_eq(atb_sengine_path_stats(sim_engine(s, 0), 0, &a), 0);
    ck_assert_int_eq(atb_sengine_path_stats(sim_engine(s, 0), 1, &b), 0);
    ck_assert_uint_gt(a.packets_out, 0);
    ck_assert_uint_gt(b.packets_out, 0);
    sim_free(s);
}
END_TEST

/* A small window and a slow, far receiver: the sender is told to wait,
 * then told it may write, and nothing is lost. */
START_TEST(test_backpressure)
{
    atb_sengine_config cfg;
    atb_sengine_config_default(&cfg);
    cfg.stream_window = 64 * 1024;
    cfg.max_message = 16 * 1024;
    sim_path_spec p = stream_path;
    p.faults.delay_us = 20000;
    p.bytes_per_us = 10;
    sim *s = sim_new(9, &cfg, &p, 1, 16 * 1024, 0, 0);
    ck_assert_ptr_nonnull(s);
    sim_queue(s, 0, 0, 2000);
    run_checked(s, 9, 600ull * 1000000u);
    const sim_side_stats *st = sim_stats(s, 0);
    ck_assert_uint_gt(st->would_block, 0);
    ck_assert_uint_eq(st->writable_calls, st->would_block);
    atb_sstream_stats ss;
    ck_assert_int_eq(atb_sengine_stream_stats(sim_engine(s, 0), 0, &ss), 0);
    ck_assert_uint_eq(ss.would_block, st->would_block);
    ck_assert_uint_eq(ss.messages_out, 2000);
    sim_free(s);
}
END_TEST

/* The receiver restarts mid-transfer: the sender goes back to its first
 * unacknowledged message and the new receiver starts there (RESET_OFFSET),
 * then gets everything after it in order. */
START_TEST(test_peer_restart)
{
    for (uint64_t seed = 1; seed <= 8; seed++) {
        atb_sengine_config cfg;
        atb_sengine_config_default(&cfg);
        sim_path_spec p = datagram_path;
        p.faults.loss = 0.05;
        sim *s = sim_new(seed, &cfg, &p, 1, 3000, 0, 0);
        ck_assert_ptr_nonnull(s);
        sim_queue(s, 0, 1, 5000);
        sim_restart_side(s, 1, 20000 + seed * 3000);
        run_checked(s, seed, 600ull * 1000000u);
        /* The first message after the restart was one the old receiver
         * had not acknowledged, not message 0. */
        ck_assert_uint_gt(sim_first_received(s, 1, 1), 0);
        sim_free(s);
    }
}
END_TEST

/* FIN after the last message; the stream is closed to further sends. */
START_TEST(test_finish_stream)
{
    atb_sengine_config cfg;
    atb_sengine_config_default(&cfg);
    sim_path_spec p = datagram_path;
    p.faults.loss = 0.1;
    sim *s = sim_new(3, &cfg, &p, 1, 500, 0, 0);
    ck_assert_ptr_nonnull(s);
    sim_queue(s, 0, 4, 300);
    sim_finish_after(s, 0, 4);
    sim_queue(s, 0, 5, 10); /* another stream is not finished */
    run_checked(s, 3, 600ull * 1000000u);
    ck_assert_uint_eq(sim_stats(s, 1)->stream_ends, 1);
    ck_assert_int_eq(atb_sengine_send(sim_engine(s, 0), 4, "x", 1),
                     ATBUS_ECLOSED);
    ck_assert_int_eq(atb_sengine_finish(sim_engine(s, 0), 4), ATBUS_ECLOSED);
    ck_assert_int_eq(atb_sengine_send(sim_engine(s, 0), 5, "x", 1), ATBUS_OK);
    sim_free(s);
}
END_TEST

/* ---- engine alone ---- */

static int sink_messages;

static void
sink_message(int64_t stream, const uint8_t *data, size_t len, void *arg)
{
    (void)stream;
    (void)data;
    (void)len;
    (void)arg;
    sink_messages++;
}

static const atb_sengine_cbs sink_cbs = {.on_message = sink_message};

/* Control streams go first even when user data is queued. */
START_TEST(test_control_first)
{
    atb_sengine_config cfg;
    atb_sengine_config_default(&cfg);
    atb_sengine *e;
    ck_assert_int_eq(atb_sengine_new(&e, &cfg, &sink_cbs, NULL), ATBUS_OK);
    ck_assert_int_eq(atb_sengine_path_add(e, 7, 1400, ATB_SPATH_RELIABLE), 0);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(atb_sengine_send(e, 1, "user data", 9), ATBUS_OK);
    }
    ck_assert_int_eq(atb_sengine_send(e, -2, "ctl", 3), ATBUS_OK);
    atb_sout out;
    ck_assert_int_eq(atb_sengine_write(e, 7, 1, &out), 1);
    ck_assert_int_eq(out.kind, ATB_SOUT_PACKET);
    ck_assert_int_eq(out.packet.stream_id, -2);
    atb_sengine_commit(e, 7, 1, &out);
    ck_assert_int_eq(atb_sengine_write(e, 7, 1, &out), 1);
    ck_assert_int_eq(out.packet.stream_id, 1);
    /* Small messages share a packet while there is a queue. */
    ck_assert_uint_gt(out.packet.nfrags, 10);
    atb_sengine_free(e);
}
END_TEST

/* Input that breaks the protocol is refused with a code, not absorbed. */
START_TEST(test_protocol_violations)
{
    atb_sengine_config cfg;
    atb_sengine_config_default(&cfg);
    atb_sengine *e;
    ck_assert_int_eq(atb_sengine_new(&e, &cfg, &sink_cbs, NULL), ATBUS_OK);
    ck_assert_int_eq(atb_sengine_path_add(e, 1, 1400, 0), ATBUS_OK);
    ck_assert_int_eq(atb_sengine_path_add(e, 1, 1400, 0), ATBUS_EEXIST);
    ck_assert_int_eq(atb_sengine_path_add(e, 2, 10, 0), ATBUS_EINVAL);
    /* An ack of units never sent. */
    atb_sack a = {.stream_id = 1, .ack_offset = 10, .received_max = 10};
    ck_assert_int_eq(atb_sengine_send(e, 1, "abc", 3), ATBUS_OK);
    ck_assert_int_eq(atb_sengine_on_ack(e, 1, &a, 1, 0, 0, 5),
                     ATBUS_EFRAME_INVALID);
    /* Data beyond a FIN. */
    atb_sfrag f = {.data = (const uint8_t *)"xy", .len = 2};
    atb_spacket fin = {
        .stream_id = 3, .offset = 0, .flags = ATB_SPKT_FINISH_STREAM};
    ck_assert_int_eq(atb_sengine_on_packet(e, 1, &fin, 1), ATBUS_OK);
    atb_spacket late = {.stream_id = 3, .offset = 0, .frags = &f, .nfrags = 1};
    ck_assert_int_eq(atb_sengine_on_packet(e, 1, &late, 2),
                     ATBUS_EFRAME_INVALID);
    /* A negative offset, one where offset + units would overflow, an
     * unknown path. */
    atb_spacket neg = {.stream_id = 4, .offset = -1};
    ck_assert_int_eq(atb_sengine_on_packet(e, 1, &neg, 3),
                     ATBUS_EFRAME_INVALID);
    atb_spacket huge = {
        .stream_id = 4, .offset = INT64_MAX, .frags = &f, .nfrags = 1};
    ck_assert_int_eq(atb_sengine_on_packet(e, 1, &huge, 3),
                     ATBUS_EFRAME_INVALID);
    ck_assert_int_eq(atb_sengine_on_packet(e, 99, &late, 3),
                     ATBUS_EFRAME_INVALID);
    /* A message above the limit, refused at both ends. */
    ck_assert_int_eq(atb_sengine_send(e, 1, NULL, cfg.max_message + 1),
                     ATBUS_EMSGSIZE);
    /* Too many streams opened by the peer. */
    atb_sfrag one = {.data = (const uint8_t *)"z", .len = 1};
    int rc = ATBUS_OK;
    for (int64_t id = 100; id < 100 + 5000 && rc == ATBUS_OK; id++) {
        atb_spacket p = {.stream_id = id, .frags = &one, .nfrags = 1};
        rc = atb_sengine_on_packet(e, 1, &p, 4);
    }
    ck_assert_int_eq(rc, ATBUS_EFRAME_INVALID);
    atb_sengine_config bad = cfg;
    bad.stream_window = bad.max_message;
    atb_sengine *e2;
    ck_assert_int_eq(atb_sengine_new(&e2, &bad, &sink_cbs, NULL), ATBUS_EINVAL);
    atb_sengine_free(e);
}
END_TEST

/* Every allocation of a short lossy exchange fails in turn; the engine
 * reports ENOMEM or recovers, and frees everything. */
START_TEST(test_allocation_failures)
{
    for (unsigned long n = 1; n < 300; n++) {
        atb_sengine_config cfg;
        atb_sengine_config_default(&cfg);
        sim_path_spec p = datagram_path;
        p.faults.loss = 0.05;
        sim *s = sim_new(4, &cfg, &p, 1, 200, 0, 0);
        ck_assert_ptr_nonnull(s);
        sim_queue(s, 0, 1, 40);
        atb_alloc_fail_nth(n);
        (void)sim_run(s, 300000);
        int fired = atb_alloc_failed();
        atb_alloc_fail_nth(0);
        sim_free(s);
        if (!fired) {
            break;
        }
    }
}
END_TEST

static Suite *
engine_suite(void)
{
    Suite *s = suite_create("stream_engine");
    TCase *tc = atb_test_case("engine", 900);
    tcase_add_test(tc, test_control_first);
    tcase_add_test(tc, test_protocol_violations);
    tcase_add_test(tc, test_finish_stream);
    tcase_add_test(tc, test_backpressure);
    tcase_add_test(tc, test_mixing_kill_one_of_two);
    tcase_add_test(tc, test_mixing_datagram_and_stream);
    tcase_add_test(tc, test_peer_restart);
    tcase_add_test(tc, test_allocation_failures);
    suite_add_tcase(s, tc);
    TCase *prop = atb_test_case("property", 900);
    tcase_add_test(prop, test_property_random_mixes);
    suite_add_tcase(s, prop);
    TCase *acc = atb_test_case("acceptance", 900);
    tcase_add_test(acc, test_acceptance_million_over_lossy_datagrams);
    suite_add_tcase(s, acc);
    return s;
}

int
main(void)
{
    return atb_test_run(engine_suite());
}
