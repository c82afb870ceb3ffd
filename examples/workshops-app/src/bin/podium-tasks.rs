use workshops_app::{Member, Workshop};

fn main() -> std::process::ExitCode {
    podium_cache_core::tasks::Tasks::new().model::<Member>().model::<Workshop>().run()
}
