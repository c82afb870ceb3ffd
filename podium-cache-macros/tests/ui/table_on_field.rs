use podium_cache_core::Cacheable;

#[derive(Cacheable)]
#[cacheable(table = "Events")]
struct Event {
    #[cacheable(table = "Users")]
    id: String,
}

fn main() {}
