export function Feed() { return <div class="screen"><h1>Feed</h1></div> }
