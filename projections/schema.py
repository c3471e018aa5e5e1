"""DDL of the read side: the views, their tracking positions. Versions 100-199."""

from __future__ import annotations

from store.migrations import Migration

VIEW_MIGRATIONS = [
    Migration(
        100,
        "views: tracking positions",
        """
        CREATE TABLE IF NOT EXISTS public.projection_positions (
            view text PRIMARY KEY,
            position bigint NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    Migration(
        101,
        "views: tasks",
        """
        CREATE TABLE IF NOT EXISTS public.tasks_view (
            task_id uuid PRIMARY KEY,
            type text NOT NULL,
            priority smallint NOT NULL,
            capabilities text[] NOT NULL,
            state text NOT NULL,
            payload jsonb NOT NULL,
            result jsonb,
            error text,
            bot_id uuid,
            fencing_token integer NOT NULL DEFAULT 0,
            idempotency_key text,
            submitted_by text NOT NULL,
            submitted_at timestamptz NOT NULL,
            assigned_at timestamptz,
            started_at timestamptz,
            finished_at timestamptz,
            assignment jsonb,
            seq bigint NOT NULL,
            version integer NOT NULL,
            position bigint NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS tasks_view_seq ON public.tasks_view (seq);
        CREATE INDEX IF NOT EXISTS tasks_view_state_seq ON public.tasks_view (state, seq);
        CREATE INDEX IF NOT EXISTS tasks_view_type_seq ON public.tasks_view (type, seq);
        CREATE INDEX IF NOT EXISTS tasks_view_bot_seq ON public.tasks_view (bot_id, seq)
            WHERE bot_id IS NOT NULL;
        """,
    ),
    Migration(
        102,
        "views: fleet",
        """
        CREATE TABLE IF NOT EXISTS public.fleet_view (
            bot_id uuid PRIMARY KEY,
            name text NOT NULL,
            capabilities text[] NOT NULL,
            max_concurrency integer NOT NULL,
            version_label text NOT NULL,
            state text NOT NULL,
            registered_at timestamptz NOT NULL,
            lost_at timestamptz,
            lost_reason text,
            deregistered_at timestamptz,
            version integer NOT NULL,
            position bigint NOT NULL
        );
        """,
    ),
    Migration(
        110,
        "views: tasks' delays and schedules",
        """
        ALTER TABLE public.tasks_view ADD COLUMN IF NOT EXISTS not_before timestamptz;
        ALTER TABLE public.tasks_view ADD COLUMN IF NOT EXISTS schedule_id uuid;
        CREATE INDEX IF NOT EXISTS tasks_view_schedule_seq ON public.tasks_view (schedule_id, seq)
            WHERE schedule_id IS NOT NULL;
        """,
    ),
    Migration(
        111,
        "views: schedules",
        """
        CREATE TABLE IF NOT EXISTS public.schedules_view (
            schedule_id uuid PRIMARY KEY,
            name text NOT NULL,
            cron text,
            timezone text,
            every_s integer,
            start_at timestamptz NOT NULL,
            task_type text NOT NULL,
            priority smallint NOT NULL,
            capabilities text[] NOT NULL,
            payload jsonb NOT NULL,
            overlap text NOT NULL,
            catchup text NOT NULL,
            catchup_limit integer NOT NULL,
            state text NOT NULL,
            not_before timestamptz NOT NULL,
            last_tick timestamptz,
            next_tick timestamptz,
            buffered_tick timestamptz,
            fired bigint NOT NULL,
            skipped bigint NOT NULL,
            last_task_id uuid,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            seq bigint NOT NULL,
            version integer NOT NULL,
            position bigint NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS schedules_view_seq ON public.schedules_view (seq);
        CREATE INDEX IF NOT EXISTS schedules_view_state_seq ON public.schedules_view (state, seq);
        """,
    ),
    Migration(
        120,
        "views: why no bot could do a task",
        """
        ALTER TABLE public.tasks_view ADD COLUMN IF NOT EXISTS unroutable jsonb;
        """,
    ),
    Migration(
        121,
        "views: bot performance, learned per (bot, task type), and the runs it follows",
        """
        CREATE TABLE IF NOT EXISTS public.bot_performance_view (
            bot_id uuid NOT NULL,
            type text NOT NULL,
            success double precision NOT NULL,
            duration_s double precision,
            samples integer NOT NULL,
            updated_at timestamptz NOT NULL,
            position bigint NOT NULL,
            PRIMARY KEY (bot_id, type)
        );
        CREATE TABLE IF NOT EXISTS public.bot_performance_runs (
            task_id uuid PRIMARY KEY,
            type text NOT NULL,
            bot_id uuid,
            started_at timestamptz
        );
        """,
    ),
    Migration(
        130,
        "views: fleet pools, launches and state reasons",
        """
        ALTER TABLE public.fleet_view
            ADD COLUMN IF NOT EXISTS pool text,
            ADD COLUMN IF NOT EXISTS launch_id uuid,
            ADD COLUMN IF NOT EXISTS state_reason text;
        CREATE INDEX IF NOT EXISTS fleet_view_pool_state ON public.fleet_view (pool, state)
            WHERE pool IS NOT NULL;
        """,
    ),
    Migration(
        131,
        "views: scaling (pools and launches)",
        """
        CREATE TABLE IF NOT EXISTS public.pools_view (
            pool_id uuid PRIMARY KEY,
            pool text NOT NULL UNIQUE,
            desired integer NOT NULL DEFAULT 0,
            reason text,
            inputs jsonb,
            resized_at timestamptz,
            version integer NOT NULL,
            position bigint NOT NULL
        );
        CREATE TABLE IF NOT EXISTS public.launches_view (
            launch_id uuid PRIMARY KEY,
            pool text NOT NULL,
            launcher text NOT NULL,
            state text NOT NULL,
            bot_id uuid,
            reason text,
            exit_code integer,
            requested_at timestamptz NOT NULL,
            registered_at timestamptz,
            closed_at timestamptz,
            version integer NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX IF NOT EXISTS launches_view_open ON public.launches_view (pool)
            WHERE state IN ('requested', 'registered', 'stopping');
        """,
    ),
    Migration(
        132,
        "views: fleet: whether a bot takes messages",
        """
        -- A bot registered before it could say took messages (Bot.Registered v2 upcasts so).
        ALTER TABLE public.fleet_view
            ADD COLUMN IF NOT EXISTS takes_messages boolean NOT NULL DEFAULT true;
        """,
    ),
    Migration(
        140,
        "views: stages (latency histograms per task type, completions per minute)",
        """
        CREATE TABLE IF NOT EXISTS public.stage_open_tasks (
            task_id uuid PRIMARY KEY,
            type text NOT NULL,
            submitted_at timestamptz NOT NULL,
            ready_at timestamptz NOT NULL,
            assigned_at timestamptz,
            started_at timestamptz
        );
        CREATE TABLE IF NOT EXISTS public.stage_histograms (
            type text NOT NULL,
            stage text NOT NULL,
            bucket smallint NOT NULL,
            count bigint NOT NULL,
            PRIMARY KEY (type, stage, bucket)
        );
        CREATE TABLE IF NOT EXISTS public.stage_totals (
            type text NOT NULL,
            stage text NOT NULL,
            count bigint NOT NULL,
            sum_ms bigint NOT NULL,
            PRIMARY KEY (type, stage)
        );
        CREATE TABLE IF NOT EXISTS public.stage_minutes (
            type text NOT NULL,
            minute timestamptz NOT NULL,
            succeeded bigint NOT NULL,
            failed bigint NOT NULL,
            e2e_sum_ms bigint NOT NULL,
            PRIMARY KEY (type, minute)
        );
        CREATE INDEX IF NOT EXISTS stage_minutes_minute ON public.stage_minutes (minute);
        """,
    ),
    Migration(
        141,
        "views: tasks counted by state, type and priority (the metrics scrape)",
        """
        CREATE INDEX IF NOT EXISTS tasks_view_state_type_priority
            ON public.tasks_view (state, type, priority);
        """,
    ),
]
