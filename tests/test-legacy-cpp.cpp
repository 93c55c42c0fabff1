// tests/test-legacy-cpp.cpp — a legacy application, written as one is written against the ADK
// headers: the echo-server / echo-reply pattern of the programmers guide, in two processes.
// Only <ipc/notify.h> (and what it includes) is used by the "application" parts.
#include <ipc/notify.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "server-fixture.h"

// HDR-5/HDR-6: DllSpec does not leak, DEPRECATED does (applications use it).
#ifdef DllSpec
#error "DllSpec leaked out of <ipc/notify.h>"
#endif
#ifndef DEPRECATED
#error "DEPRECATED must stay defined after <ipc/notify.h>"
#endif
#ifndef IPC_JSOBJECT_H_150611
#error "<ipc/notify.h> must include <ipc/jsobject.h> (HDR-3)"
#endif
static_assert(vfiipc::NOTIFY_ERR_CONFIG_SYNTAX == -5, "NotifyResult values");
static_assert(vfiipc::NOTIFY_ERR_PERMISSION == -3, "NotifyResult values");

using namespace vfiipc;

static server_fixture_t server;

// ---- the echo server application (child process) ----

static void echo_cb(void *data, const std::string &from, const std::string &to,
                    const std::string &notification_id, const JSObject &param, unsigned flags)
{
        // CBT-4: sending from inside a callback, back to whoever asked.
        JSObject reply = param;
        reply("echoed_by") = "echo-server";
        reply("to_was") = to;
        ipcNotify(from, "echo-reply", reply);
}

static void throwing_cb(void *, const std::string &, const std::string &, const std::string &,
                        const JSObject &, unsigned)
{
        throw std::runtime_error("escaped from a callback"); // G-69: caught by the library
}

static int run_echo_server(int ready_fd)
{
        ipcSetAppID("echo-server");
        if (ipcRegisterNotificationCB("echo", echo_cb, 0) != NOTIFY_OK)
                return 1;
        if (ipcRegisterNotificationCB("throw", throwing_cb, 0) != NOTIFY_OK)
                return 1;
        if (write(ready_fd, "r", 1) != 1)
                return 1;
        for (;;) // CBT-3: a receiver whose main only sleeps
                sleep(1);
}

// ---- the client application (this process) ----

static std::atomic<int> replies;
static std::string last_reply, last_from, last_to;

static void reply_cb(void *data, const std::string &from, const std::string &to,
                     const std::string &notification_id, const JSObject &param, unsigned flags)
{
        last_reply = param.dump();
        last_from = from;
        last_to = to;
        replies++;
}

static std::atomic<int> errors;
static void error_cb(void *, const std::string &, const std::string &to, const std::string &id,
                     const JSObject &param, unsigned)
{
        if (id == "throw" || id == "nobody")
                errors++;
}

static bool wait_for(std::atomic<int> &v, int want)
{
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        while (v.load() < want && g_get_monotonic_time() < deadline)
                g_usleep(1000);
        return v.load() >= want;
}

static void test_echo_round_trip()
{
        int pipefd[2];
        char c;
        g_assert_cmpint(pipe(pipefd), ==, 0);
        pid_t pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                close(pipefd[0]);
                _exit(run_echo_server(pipefd[1]));
        }
        close(pipefd[1]);
        g_assert_cmpint(read(pipefd[0], &c, 1), ==, 1);
        close(pipefd[0]);

        ipcSetAppID("echo-client");
        std::string own = ipcGetAppID();
        g_assert_cmpstr(own.c_str(), ==, "echo-client");
        g_assert_cmpint(ipcRegisterNotificationCB("echo-reply", reply_cb, 0), ==, NOTIFY_OK);
        g_assert_cmpint(ipcRegisterUnicastError(error_cb, 0), ==, NOTIFY_OK);

        JSObject msg;
        msg("text") = "hello";
        msg("n") = 42;
        msg("list")[2]("id") = 7; // JS-ARR-6
        msg("big") = (long long)9007199254740993LL;
        g_assert_cmpint(ipcNotify("echo-server", "echo", msg), ==, NOTIFY_OK);
        g_assert_true(wait_for(replies, 1));
        g_assert_cmpstr(last_from.c_str(), ==, "echo-server");
        g_assert_cmpstr(last_to.c_str(), ==, "echo-client");
        g_assert_cmpstr(last_reply.c_str(), ==,
                        "{\"big\":9007199254740993,\"echoed_by\":\"echo-server\",\"list\":"
                        "[null,null,{\"id\":7}],\"n\":42,\"text\":\"hello\",\"to_was\":\"echo-server\"}");

        // "1" reaches the echo server too, and it sees to == "1" (DLV-5).
        g_assert_cmpint(ipcNotify("1", "echo", msg), ==, NOTIFY_OK);
        g_assert_true(wait_for(replies, 2));
        g_assert_true(last_reply.find("\"to_was\":\"1\"") != std::string::npos);

        // A throwing callback does not take the server process down.
        g_assert_cmpint(ipcNotify("echo-server", "throw", JSObject()), ==, NOTIFY_OK);
        g_assert_cmpint(ipcNotify("echo-server", "echo", msg), ==, NOTIFY_OK);
        g_assert_true(wait_for(replies, 3));

        // Unicast error through the C++ callback type.
        g_assert_cmpint(ipcNotify("nobody", "nobody", msg), ==, NOTIFY_OK);
        g_assert_true(wait_for(errors, 1));

        // UNREG-D-2: the deprecated overload removes any callback for the ID.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        g_assert_cmpint(ipcUnregisterNotificationCB("echo-reply"), ==, NOTIFY_OK);
        g_assert_cmpint(ipcUnregisterUnicastError(), ==, NOTIFY_OK);
        g_assert_cmpint(ipcUnregisterObserver(), ==, NOTIFY_OK);
#pragma GCC diagnostic pop
        g_assert_cmpint(ipcNotify("echo-server", "echo", msg), ==, NOTIFY_OK);
        g_usleep(300 * 1000);
        g_assert_cmpint(replies.load(), ==, 3);

        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
}

// UNREG-D-2: (id, 0) / (id, NULL) select the non-deprecated overload (compile-time check).
static void test_overload_selection()
{
        g_assert_cmpint(ipcUnregisterNotificationCB("x", 0), ==, NOTIFY_OK);
        g_assert_cmpint(ipcUnregisterNotificationCB("x", nullptr), ==, NOTIFY_OK);
        g_assert_cmpint(ipcUnregisterNotificationCB("x", reply_cb, 0, "someone"), ==, NOTIFY_OK);
}

// SRVF-5 / SRV-5: a second server in a running system returns NOTIFY_ERR_SERVER at once.
static void test_second_server_fails()
{
        g_assert_cmpint(ipcNotificationServer(), ==, NOTIFY_ERR_SERVER);
        g_assert_cmpint(ipcNotificationServer("/nonexistent/notify.cfg"), ==,
                        NOTIFY_ERR_CONFIG_FILE);
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, nullptr);
        signal(SIGPIPE, SIG_IGN);
        server_fixture_start(&server);
        g_test_add_func("/legacy-cpp/echo-round-trip", test_echo_round_trip);
        g_test_add_func("/legacy-cpp/overload-selection", test_overload_selection);
        g_test_add_func("/legacy-cpp/second-server-fails", test_second_server_fails);
        int r = g_test_run();
        server_fixture_stop(&server);
        return r;
}
